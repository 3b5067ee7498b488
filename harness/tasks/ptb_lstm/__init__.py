"""The PTB LSTM language model (paper Sec. 7.2, App. D.2) with a Kneser-Ney bigram as the
restricted model."""

"""GLUE with BERT (paper Sec. 7.2, App. D.2): MLM re-introduced in fine-tuning, with IMM
on the MLM predictions under a causal view. Foundation pieces: ``config`` (params),
``model`` (encoder + classification + MLM heads), ``causal`` (one-pass causal MLM
predictions), ``metrics`` (MCC, F1, accuracy); data in ``harness.data.glue``. The Task
itself (training loop, Views) is not written yet, so nothing is registered here."""

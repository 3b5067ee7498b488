"""The logistic-regression toy of the paper (Sec. 7.1, App. D.1)."""

"""GLUE with BERT (paper Sec. 7.2, App. D.2): MLM re-introduced in fine-tuning, with IMM
on the MLM predictions under a causal view. Modules: ``config`` (params), ``model``
(encoder + classification + MLM heads), ``causal`` (one-pass causal MLM predictions),
``corpus`` (token matrices of the splits), ``restricted`` (KN bigram over WordPiece),
``induced`` (causal predictions at sampled training positions, serialized IMM's stale
table), ``views`` (what methods see), ``train`` (the fine-tuning loop), ``evaluate`` and
``metrics`` (MCC, F1, accuracy), ``task`` (the registered ``glue_bert`` task); data in
``harness.data.glue``."""

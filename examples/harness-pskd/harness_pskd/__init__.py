"""PS-KD (Kim et al. 2021) for harness: a method plugin written against the public contract."""

"""harness: a declarative benchmark harness for Induced Model Matching and its baselines."""

__version__ = "0.1.0"

"""A package, so that its conftest.py is not imported as the top-level `conftest` of
tests/ (pytest 9 collides the two names)."""

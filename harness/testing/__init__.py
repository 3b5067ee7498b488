"""Test helpers that ship with the package, so that plugin authors can run them on their
own tasks and methods (``pytest --pyargs harness.testing.contract``)."""

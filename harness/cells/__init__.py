"""What a spec's grid is and what its results are: the cells of a spec (``grid``), the
data files they read (``data``), a cell's record (``record``) and the results folder's
files that readers need (``folder``).

The runner writes these and the report reads them; both import this package, and this
package imports neither, so the report is a library below the runner (tests/test_layers.py
checks the import graph)."""

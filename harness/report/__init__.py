"""Reports of a spec's results: pooled tables (md, csv, latex, html), plots, and checks
against numbers reported in papers (``reported/*.yaml``)."""

from harness.report.load import Pooled, ReportError, ResultSet, load_results

__all__ = ["Pooled", "ReportError", "ResultSet", "load_results"]

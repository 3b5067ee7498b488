"""The installed distribution's version (``imm-harness``), for ``--version`` and the
footers of generated pages; light to import, so that pages need not import the command
line."""

from __future__ import annotations

from importlib import metadata

DISTRIBUTION = "imm-harness"


def version() -> str:
    """The installed version, or "unknown" when run from an uninstalled tree."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "unknown"

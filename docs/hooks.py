"""MkDocs hooks: the pages generated from the code at build time (harness.manual), so the
spec reference follows the pydantic models and the command reference the parser."""

from __future__ import annotations

from typing import Any

from mkdocs.structure.files import File, Files

GENERATED = {
    "reference/spec.md": "spec_reference",
    "reference/commands.md": "command_reference",
}


def on_files(files: Files, config: Any) -> Files:
    import harness.manual as manual

    for path, function in GENERATED.items():
        files.append(File.generated(config, path, content=getattr(manual, function)()))
    return files

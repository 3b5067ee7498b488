"""Which processes are still alive in a process group or a session (Linux ``/proc``): the
tests and benchmarks that kill runs and servers check that nothing they started is left."""

from __future__ import annotations

from pathlib import Path

_GROUP, _SESSION = 2, 3  # fields of /proc/<pid>/stat after the command name


def live_processes(*, group: int | None = None, session: int | None = None) -> list[int]:
    """PIDs of the live (not zombie) processes in process group ``group`` or in session
    ``session`` (exactly one of the two)."""
    if (group is None) == (session is None):
        raise ValueError("give exactly one of group and session")
    field, wanted = (_GROUP, group) if group is not None else (_SESSION, session)
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[field]) == wanted and fields[0] != "Z":
            found.append(int(entry.name))
    return found

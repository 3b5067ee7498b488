"""Where a result set's numbers come from, read from its records and its journal: commits,
hosts, dates, library versions, threads (the line under every leaderboard source and
results page) and, for the HTML report, everything else a reader needs to trust a
number: machines, devices, data files and the spec as run."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.report.load import ResultSet


def hosts_of(rs: ResultSet) -> dict[str, str]:
    """{cell id: host} of the 'recorded' events in the results folder's journal."""
    from harness.jsonfile import read_jsonl

    hosts: dict[str, str] = {}
    for entry in read_jsonl(rs.results_dir / "journal.jsonl"):  # bad lines skipped
        if entry.get("event") == "recorded" and entry.get("cell_id"):
            hosts[str(entry["cell_id"])] = str(entry.get("host"))
    return hosts


@dataclass(frozen=True)
class Provenance:
    """Where a source's numbers come from, read from its records and journal."""

    commits: tuple[str, ...]
    hosts: tuple[str, ...]
    finished: tuple[str, str] | None  # first and last 'finished' timestamps
    versions: dict[str, str | None]
    threads: tuple[Any, ...]

    @property
    def dates(self) -> str:
        if not self.finished:
            return "unknown"
        first, last = (t[:10] for t in self.finished)
        return first if first == last else f"{first} to {last}"

    def text(self) -> str:
        commits = ", ".join(c[:12] + (" (uncommitted changes)" if c.endswith("-dirty") else "")
                            for c in self.commits) or "unknown"
        parts = [f"commit {commits}",
                 f"host {', '.join(self.hosts)} (journal.jsonl)" if self.hosts
                 else "host unknown"]
        libs = [f"{k} {self.versions[k]}" for k in ("torch", "python") if self.versions.get(k)]
        if libs:
            parts.append(", ".join(libs))
        threads = [str(t) for t in self.threads if t is not None]
        if threads:
            parts.append(f"{'/'.join(threads)} thread(s) a cell")
        parts.append(f"cells finished {self.dates}" + (" (UTC)" if self.finished else ""))
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {"commits": list(self.commits), "hosts": list(self.hosts),
                "finished": list(self.finished) if self.finished else None,
                "versions": self.versions, "threads": list(self.threads)}


def provenance(rs: ResultSet) -> Provenance:
    hosts = hosts_of(rs)
    records = rs.records
    finished = sorted(str(r["finished"]) for r in records if r.get("finished"))
    versions: dict[str, str | None] = {}
    for record in records:
        for key, value in (record.get("versions") or {}).items():
            if key in ("python", "torch", "harness", "numpy"):
                versions.setdefault(key, value)
    return Provenance(
        commits=tuple(sorted({str(r["git_commit"]) for r in records if r.get("git_commit")})),
        hosts=tuple(sorted({hosts[r["cell_id"]] for r in records if r["cell_id"] in hosts})),
        finished=(finished[0], finished[-1]) if finished else None,
        versions=versions,
        threads=tuple(sorted({r.get("threads") for r in records},
                             key=lambda t: (t is None, t or 0))),
    )




def _dates(records: list[dict[str, Any]], key: str) -> list[str]:
    return sorted(str(r[key]) for r in records if r.get(key))


def details(rs: ResultSet) -> list[tuple[str, str]]:
    """(what, value) rows for a report: everything that decides or describes its numbers."""
    records = rs.records
    counts: dict[str, int] = {}
    for record in records:
        counts[record["status"]] = counts.get(record["status"], 0) + 1
    started, finished = _dates(records, "started"), _dates(records, "finished")
    hosts = hosts_of(rs)
    machines = sorted({(str(m.get("cpu") or "?"), str(m.get("cores") or "?"))
                       for r in records if (m := r.get("machine"))})
    devices = sorted({str(r["machine"].get("device")) for r in records
                      if r.get("machine") and r["machine"].get("device")})
    versions: dict[str, set[str]] = {}
    for record in records:
        for name, value in (record.get("versions") or {}).items():
            versions.setdefault(name, set()).add(str(value))
    threads = sorted({str(r.get("threads")) for r in records if r.get("threads") is not None})
    commits = sorted({str(r["git_commit"]) for r in records if r.get("git_commit")})
    rows = [
        ("results folder", str(rs.results_dir)),
        ("spec", f"{rs.name} (task {rs.task}; the spec as run is below)"),
        ("records", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) +
         (f"; {rs.left_out} of other settings left out" if rs.left_out else "")),
        ("commit", ", ".join(c + (" (uncommitted changes)" if c.endswith("-dirty") else "")
                             for c in commits) or "unknown (not run from a git checkout)"),
        ("cells started", f"{started[0]} to {started[-1]} (UTC)" if started else "unknown"),
        ("cells finished", f"{finished[0]} to {finished[-1]} (UTC)" if finished
         else "unknown"),
        ("hosts", ", ".join(sorted(set(hosts.values()))) or "unknown (no journal.jsonl)"),
        ("machines", "; ".join(f"{cpu}, {cores} cores" for cpu, cores in machines) or
         "unknown"),
        ("devices", ", ".join(devices) or "unknown"),
        ("threads a cell", ", ".join(threads) or "unknown"),
        ("versions", "; ".join(f"{name} {', '.join(sorted(v))}"
                               for name, v in sorted(versions.items())) or "unknown"),
    ]
    for role, entry in sorted(rs.data.items()):
        if "source" in entry:
            rows.append((f"data: {role}", str(entry["source"])))
        else:
            rows.append((f"data: {role}", f"{entry.get('path')} ({entry.get('size')} bytes, "
                                          f"sha256 {entry.get('sha256')})"))
    if not rs.data:
        rows.append(("data", "none read from files (the task generates its data)"))
    return rows

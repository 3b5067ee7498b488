"""Code identity and a scoped --fresh with the shared PostgreSQL store (a real server):
a done cell whose method code changed is put back to pending and recomputed (not waited
for forever), and `--fresh --only` forgets the selected cells alone."""

from __future__ import annotations

from pathlib import Path

from clusterkit import events, postgres, states, store  # noqa: F401 - fixtures
from test_code_identity import PLUGIN, by_method, harness, notes, tiny, write


def test_changed_code_and_a_scoped_fresh_with_a_shared_store(tmp_path: Path,
                                                             store: str) -> None:  # noqa: F811
    plugin = tmp_path / "mine.py"
    plugin.write_text(PLUGIN, encoding="utf-8")
    spec = write(tmp_path, tiny(["mine.py"]))
    results = tmp_path / "results" / "tiny"
    first = harness("run", str(spec), "--no-report", "--store", store, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "4 ok, 0 failed, 0 skipped (0 resumed)" in first.stdout
    before = by_method(results)

    plugin.write_text(PLUGIN + "\n# changed\n", encoding="utf-8")
    second = harness("run", str(spec), "--no-report", "--store", store, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert "4 ok, 0 failed, 0 skipped (2 resumed)" in second.stdout
    [line] = notes(second)
    assert line.startswith("note: method mine: sources ") and "2 cell(s)" in line
    assert set(states(store, "tiny").values()) == {"done"}
    recorded = [e["cell_id"] for e in events(store, "tiny", "recorded")]
    assert len(recorded) == 6 and len(set(recorded)) == 4  # mine's two cells twice
    after = by_method(results)
    assert {r["finished"] for r in after["baseline"]} == \
        {r["finished"] for r in before["baseline"]}
    assert len(list((results / "cells" / "replaced").glob("*.json"))) == 2

    third = harness("run", str(spec), "--no-report", "--store", store, "--fresh",
                    "--only", "method=baseline", cwd=tmp_path)
    assert third.returncode == 0, third.stderr
    assert "2 ok, 0 failed, 0 skipped (0 resumed)" in third.stdout
    now = by_method(results)
    assert {r["finished"] for r in now["mine"]} == {r["finished"] for r in after["mine"]}
    assert not {r["finished"] for r in now["baseline"]} & \
        {r["finished"] for r in after["baseline"]}
    assert len(states(store, "tiny")) == 4

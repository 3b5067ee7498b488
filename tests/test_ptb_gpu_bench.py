"""benchmarks/ptb_gpu.py (the GPU speed script) runs end to end with --smoke on the CPU:
every method's ratio is finite at both scales (its numbers mean nothing on a tiny model)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"


@pytest.mark.skipif(not (DATA / "ptb" / "ptb.train.txt").exists(), reason="PTB data not available")
def test_gpu_script_smoke_runs_on_the_cpu(tmp_path):
    out = tmp_path / "gpu.json"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "ptb_gpu.py"), "--smoke",
                    "--data-dir", str(DATA), "--json", str(out)], check=True,
                   capture_output=True, text=True, timeout=300)
    found = json.loads(out.read_text())
    keys = {"noising", "reverse_kd", "imm_serialized", "imm_sampled", "imm_sampled_every_batch"}
    assert set(found["cpu_scale"]["ratio"]) == keys
    assert set(found["paper_scale"]["ratio"]) == keys
    assert found["info"]["device"] == "cpu" and found["info"]["smoke"]
    assert found["paper_scale"]["refresh_seconds"] >= 0.0

"""A first Ctrl-C may land while a file claim is being written (its fsync is slow on a
busy disk): the lock file must not outlive the claim, else the cell stays held by a
process that no longer runs until the claim times out."""

from __future__ import annotations

import os

import pytest

from harness.runner.claims import FileClaims


def test_an_interrupt_while_a_claim_is_written_leaves_no_lock(tmp_path, monkeypatch):
    claims = FileClaims(tmp_path)

    def interrupted(_fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        claims.acquire("cell")
    assert not list(tmp_path.glob("*.lock"))
    monkeypatch.undo()
    other = FileClaims(tmp_path)
    claim = other.acquire("cell")  # free at once, not after the claim timeout
    assert claim is not None and other.holds(claim)
    other.close()
    claims.close()
    assert not list(tmp_path.glob("*.lock"))

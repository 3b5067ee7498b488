"""The one generic registry: decorator and lazy registration, did-you-mean, freezing."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness.registry import (
    METHODS,
    TASKS,
    PluginError,
    Registry,
    RegistryFrozenError,
    UnknownNameError,
)


def test_decorator_and_lookup():
    reg: Registry = Registry("widget")

    @reg.register("spinner", description="spins")
    class Spinner:
        """A spinner."""

    assert reg.get("spinner") is Spinner
    assert reg.describe() == [("spinner", "spins")]
    assert "spinner" in reg and len(reg) == 1


def test_lazy_target_is_imported_on_first_use():
    reg: Registry = Registry("thing")
    reg.add("path", "pathlib:PurePosixPath", config="pathlib:Path")
    from pathlib import Path, PurePosixPath

    assert reg.get("path") is PurePosixPath
    assert reg.config("path") is Path


def test_unknown_name_suggests_and_lists():
    with pytest.raises(UnknownNameError) as info:
        METHODS.get("imm_sampeld")
    message = str(info.value)
    assert message.startswith("Unknown method 'imm_sampeld'. Did you mean: imm_sampled?")
    assert "Registered methods: baseline, imm_sampled" in message
    assert "\n" not in message


def test_no_suggestion_when_nothing_is_close():
    with pytest.raises(UnknownNameError, match=r"Unknown task 'zzz'\. Registered tasks: "):
        TASKS.get("zzz")


def test_duplicate_and_frozen():
    reg: Registry = Registry("x")
    reg.add("a", object())
    with pytest.raises(PluginError, match="already registered"):
        reg.add("a", object())
    reg.freeze()
    with pytest.raises(RegistryFrozenError):
        reg.add("b", object())


def test_builtins_are_registered_and_load():
    assert {"baseline", "interpolation", "noising", "reverse_kd", "imm_sampled",
            "imm_serialized"} <= set(METHODS.names())
    for name in METHODS:
        cls = METHODS.get(name)
        assert cls.name == name
        assert METHODS.config(name)().model_dump() is not None
    assert TASKS.get("logistic").name == "logistic"


def test_listing_does_not_import_torch():
    code = ("import sys; from harness.cli import main; main(['list', 'methods']); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "imm_serialized" in proc.stdout

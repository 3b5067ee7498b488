"""The generated reference pages (harness.manual) hold every field of the spec models,
of every registered task's and method's params, and every command and option of the
parser; nothing is typed by hand, so a new field or option appears by itself."""

from __future__ import annotations

import argparse

from harness.cli import build_parser
from harness.manual import command_reference, main, spec_reference
from harness.registry import METHODS, TASKS, discover
from harness.spec import spec_model
from harness.spec.models import TrackingSettings, TuningSettings


def test_the_spec_reference_has_every_field() -> None:
    discover()
    page = spec_reference()
    for model in (spec_model(), TuningSettings, TrackingSettings):
        for name, info in model.model_fields.items():
            assert f"| `{info.alias or name}` |" in page, name
    for registry, kind in ((TASKS, "Task"), (METHODS, "Method")):
        for name in registry.names():
            assert f"### {kind} `{name}`" in page
            for field in registry.config(name).model_fields:
                assert f"| `{field}` |" in page, (name, field)
    assert "| `epochs` | int &gt; 0 | `5000` |" in page  # logistic's, with its bound
    assert "takes no `lambda`" in page and "takes a `lambda`" in page
    assert "<name>" not in page  # raw angle brackets would vanish as HTML


def test_the_command_reference_has_every_command_and_option() -> None:
    page = command_reference()
    parser = build_parser()
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, command in sub.choices.items():
        assert f"## harness {name}" in page
        for action in command._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert f"`{option}" in page, (name, option)
    assert "## harness init" in page and "`--against-results OLD_RESULTS`" in page


def test_python_m_harness_manual_prints_a_page(capsys) -> None:
    assert main(["commands"]) == 0
    assert capsys.readouterr().out.startswith("# Command reference")
    assert main(["nonsense"]) == 2

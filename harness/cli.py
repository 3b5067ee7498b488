"""The ``harness`` command line. Heavy imports (torch, mlflow, optuna) happen inside the
subcommands that need them, so ``--help``, ``validate``, ``list`` and ``schema`` are fast.

Every mistake a user can make is one line on stderr and exit status 1 (2 for a malformed
command line), never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import yaml


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``harness run: error: ... (see harness run --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parse_assignment(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    try:
        return key, yaml.safe_load(value)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise argparse.ArgumentTypeError(f"{text!r}: the value is not valid YAML "
                                         f"({problem})") from None


def _version() -> str:
    from harness.version import version

    return version()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness",
        description="Declarative benchmark harness for Induced Model Matching (IMM).",
    )
    parser.add_argument("--version", action="version", version=f"harness {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                parser_class=_Parser)

    p = sub.add_parser("validate", help="check specs against the schema (exit 0 or 1)")
    p.add_argument("specs", nargs="+", metavar="SPEC")
    p.add_argument("--data-dir", default=None,
                   help="the data folder (else the spec's data_dir, else HARNESS_DATA_DIR): "
                   "when there is one, the data files the cells read and the sizes they "
                   "allow are checked as a run checks them")

    p = sub.add_parser("run", help="run a spec's grid (resumes by default)")
    p.add_argument("spec", metavar="SPEC")
    p.add_argument(
        "--only", action="append", type=_parse_assignment, default=[], metavar="KEY=VALUE",
        help="restrict the grid: method=NAME|LABEL, size=N, seed=N (repeatable)",
    )
    p.add_argument(
        "--set", action="append", type=_parse_assignment, default=[], metavar="PATH=VALUE",
        dest="overrides", help="override a spec field, e.g. task.params.epochs=100 (repeatable)",
    )
    p.add_argument("--workers", type=int, default=None,
                   help="parallel cell workers: local processes (each gets its own GPU when "
                   "several are visible; default: one per core, at most one per unit of "
                   "work, this process computing too while they start), or with "
                   "--executor ray the most cells in flight (default: as many as the "
                   "cluster has room for)")
    p.add_argument("--executor", choices=["local", "ray"], default="local",
                   help="where cells run: this machine (default) or a Ray cluster "
                   "(operational: not in the cell id)")
    p.add_argument("--address", default=None, metavar="HOST:PORT",
                   help="the Ray cluster's head (with --executor ray; default: start a "
                   "local Ray instance for this run)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="shared store of cells, leases and results: "
                   "postgresql+psycopg://USER@HOST:PORT/DB (default: the spec's store, "
                   "else file claims in the results folder)")
    p.add_argument("--enqueue", action="store_true",
                   help="only put the cells in the --store's table, for `harness worker`s")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per cell process (default: the spec's threads, else "
                   "the task's choice, else cores / workers)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (overrides spec)")
    p.add_argument("--data-dir", default=None, help="data files (else spec or HARNESS_DATA_DIR)")
    p.add_argument("--fresh", action="store_true",
                   help="discard earlier results of this spec (with --only: of the selected "
                   "cells only; only what harness wrote; never a cell a live run holds)")
    p.add_argument("--reuse-changed-code", action="store_true",
                   help="resume records whose task or method code changed since they were "
                   "computed (default: recompute them, keeping the old records aside)")
    p.add_argument("--no-report", action="store_true", help="skip the report after the run")
    p.add_argument("--no-groups", action="store_true",
                   help="train every cell and tuning trial as its own program (cells of "
                   "the logistic and grid RL tasks otherwise train together, with the "
                   "same numbers; for comparisons)")
    p.add_argument("--dry-run", action="store_true",
                   help="compute and write nothing: show the grid, the cells that would be "
                   "resumed and the time the rest would take (from earlier records of the "
                   "same task)")

    p = sub.add_parser("list", help="list registered tasks or methods")
    p.add_argument("kind", choices=["tasks", "methods"])

    p = sub.add_parser("report", help="comparison table (and plot) of a spec's results")
    p.add_argument("source", metavar="SPEC|RESULTS", help="a spec file or a results directory")
    p.add_argument("--format", choices=["md", "csv", "latex", "html"], default="md")
    p.add_argument("--metric", default=None, help="metric to report (default: the spec's)")
    p.add_argument("--plot", default=None, metavar="FILE.png", help="also write a plot")
    p.add_argument("--output", "-o", default=None, help="write the table here (else stdout)")
    p.add_argument("--data-dir", default=None, help="the data the spec's cells read")
    p.add_argument("--store", default=None, metavar="URL",
                   help="read the records from this shared store instead of the folder")

    p = sub.add_parser("check", help="compare results with reported numbers (exit 1 on regression)")
    p.add_argument("source", metavar="SPEC|RESULTS")
    p.add_argument("--against", default=None, metavar="reported/FILE.yaml")
    p.add_argument("--against-results", default=None, metavar="OLD_RESULTS",
                   help="compare with an earlier run's results (equal, or within the noise)")
    p.add_argument("--format", choices=["text", "json", "junit"], default="text")
    p.add_argument("--output", "-o", default=None, help="write the output here (else stdout)")
    p.add_argument("--require-all", action="store_true",
                   help="rows not run (sizes or cells without results) fail")
    p.add_argument("--data-dir", default=None, help="the data the spec's cells read")

    p = sub.add_parser("leaderboard", help="rank methods over several result sets (win "
                       "rates, ranks, paired intervals, data-equivalent gain)")
    p.add_argument("sources", nargs="+", metavar="SPEC|RESULTS")
    p.add_argument("--reference", default="baseline", metavar="LABEL",
                   help="the method differences and data gains are measured against")
    p.add_argument("--format", choices=["md", "csv", "json", "html"], default="md")
    p.add_argument("--output", "-o", default=None, help="write the board here (else stdout)")
    p.add_argument("--stat", choices=["median", "mean"], default="median",
                   help="the statistic of the pooled replicates (default median)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level")
    p.add_argument("--reports", action="store_true",
                   help="the results page: the board, then every source's report tables "
                   "and where their records come from (with --format md)")
    p.add_argument("--machine", default=None, help="a description of the machine, for the page")
    p.add_argument("--append", default=None, metavar="FILE.md",
                   help="append this hand-written Markdown to the --reports page, marked so")
    p.add_argument("--data-dir", default=None, help="the data the specs' cells read")

    p = sub.add_parser("records", help="list every record in a results folder, in the grid "
                       "or not")
    p.add_argument("source", metavar="SPEC|RESULTS")
    p.add_argument("--data-dir", default=None, help="the data the spec's cells read")

    p = sub.add_parser("worker", help="compute cells queued in a shared store until told to "
                       "stop (clusters without Ray, e.g. a SLURM array)")
    p.add_argument("--store", required=True, metavar="URL",
                   help="postgresql+psycopg://USER@HOST:PORT/DB")
    p.add_argument("--spec", default=None, metavar="NAME", help="only this spec's cells")
    p.add_argument("--until-empty", action="store_true",
                   help="exit once no cell is pending or running")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads per cell (default: the spec's, else the task's)")
    p.add_argument("--poll", type=float, default=1.0, metavar="SECONDS",
                   help="how often an idle worker looks for cells")
    p.add_argument("--group", type=int, default=8, metavar="N",
                   help="cells claimed at once: those that can share a program (logistic, "
                   "grid RL) train together, each still recorded on its own (default 8)")
    p.add_argument("--max-cells", type=int, default=None, metavar="N",
                   help="exit after computing N cells")

    p = sub.add_parser("status", help="counts of a spec's cells by state and who holds "
                       "which (from the store, else the results folder)")
    p.add_argument("source", metavar="SPEC|NAME", help="a spec file (or with --store, a "
                   "spec's name)")
    p.add_argument("--store", default=None, metavar="URL",
                   help="the shared store (default: the spec's store, else the folder)")

    sub.add_parser("schema", help="print the spec's JSON Schema (for editor autocompletion)")

    p = sub.add_parser("init", help="write a new spec, method plugin or task plugin from a "
                       "template (nothing existing is overwritten)")
    p.add_argument("kind", choices=["spec", "method", "task"],
                   help="spec: NAME.yaml; method or task: a plugin package harness-NAME/ "
                   "that passes harness's contract tests as written")
    p.add_argument("name", metavar="NAME", help="lower-case letters, digits and underscores")
    p.add_argument("--dir", default=".", help="where to write (default: here)")
    p.add_argument("--task", default="logistic", help="spec only: the task (default logistic)")
    p.add_argument("--methods", default="baseline,imm_sampled", metavar="M1,M2",
                   help="spec only: the methods, comma-separated (default baseline,imm_sampled)")
    p.add_argument("--sizes", default=None, metavar="N1,N2",
                   help="spec only: the dataset sizes (default: the task's contract size "
                   "and twice it)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from harness.waiting import choose_waiting

    choose_waiting()  # before torch loads: how OpenMP's idle threads wait
    args = build_parser().parse_args(argv)
    from harness.errors import HarnessError
    from harness.registry import UnknownNameError
    from harness.spec import SpecError

    try:
        return COMMANDS[args.command](args)
    except SpecError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return 1
    except (UnknownNameError, HarnessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved and running cells keep their "
              "checkpoints; run again to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `harness schema | head`: the reader left; nothing is wrong with the command.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception:
        # A bug: its traceback is for a report, but never with a password in it.
        import traceback

        from harness.masking import mask

        sys.stderr.write(mask(traceback.format_exc()))
        return 1


def cmd_validate(args: argparse.Namespace) -> int:
    from harness.data.location import data_root
    from harness.errors import HarnessError
    from harness.spec import SpecError, load_spec
    from harness.spec.requirements import missing_requirements

    failed = False
    for path in args.specs:
        try:
            spec = load_spec(path)
            unmet = missing_requirements(spec)  # plugins import, extras installed
            data_note = (_check_spec_data(spec, args.data_dir)
                         if data_root(args.data_dir, spec.data_dir) is not None else "")
        except SpecError as exc:
            failed = True
            for line in exc.lines:
                print(line, file=sys.stderr)
        except HarnessError as exc:
            failed = True
            print(f"{path}: {exc}", file=sys.stderr)
        else:
            if unmet:
                failed = True
                for line in unmet:
                    print(f"{path}: {line}", file=sys.stderr)
                continue
            print(f"{path}: ok ({spec.task.name}, {len(spec.methods)} methods, "
                  f"{len(spec.sizes)} sizes, {len(spec.seeds)} seeds, {spec.runs} runs"
                  f"{data_note})")
    return 1 if failed else 0


def _check_spec_data(spec: Any, data_dir: str) -> str:
    """The data checks a run makes before any compute; ', N data files' when they pass."""
    from harness.cells.data import CellData
    from harness.cells.grid import expand
    from harness.runner.sweep import check_data

    data = CellData.for_spec(spec, data_dir)
    cells = expand(spec, None, data)
    check_data(spec, cells, data)
    files = {entry.get("path") or entry.get("source") for c in cells for entry in c.data.values()}
    return f", {len(files)} data files checked" if files else ", no data files"


def cmd_list(args: argparse.Namespace) -> int:
    from harness.registry import METHODS, TASKS, discover

    discover()
    registry = TASKS if args.kind == "tasks" else METHODS
    rows = registry.origins()
    width = max(len(name) for name, _, _ in rows)
    origin_width = max(len(origin) for _, origin, _ in rows)
    for name, origin, description in rows:
        print(f"{name:<{width}}  {origin:<{origin_width}}  {description}")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from harness.spec import spec_model

    print(json.dumps(spec_model().model_json_schema(by_alias=True), indent=2))
    sys.stdout.flush()
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from harness.scaffold import init_command

    return init_command(args)


def cmd_run(args: argparse.Namespace) -> int:
    from harness.runner.command import run_command

    return run_command(args)


def cmd_report(args: argparse.Namespace) -> int:
    from harness.report.command import report_command

    if getattr(args, "store", None):
        from harness.runner.status import report_from_store

        return report_from_store(args, report_command)
    return report_command(args)


def cmd_worker(args: argparse.Namespace) -> int:
    from harness.runner.worker import worker_command

    return worker_command(args)


def cmd_status(args: argparse.Namespace) -> int:
    from harness.runner.status import status_command

    return status_command(args)


def cmd_check(args: argparse.Namespace) -> int:
    from harness.report.command import check_command

    return check_command(args)


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.report.command import leaderboard_command

    return leaderboard_command(args)


def cmd_records(args: argparse.Namespace) -> int:
    from harness.report.command import records_command

    return records_command(args)


COMMANDS = {
    "validate": cmd_validate,
    "run": cmd_run,
    "list": cmd_list,
    "report": cmd_report,
    "check": cmd_check,
    "leaderboard": cmd_leaderboard,
    "records": cmd_records,
    "worker": cmd_worker,
    "status": cmd_status,
    "schema": cmd_schema,
    "init": cmd_init,
}

if __name__ == "__main__":
    sys.exit(main())

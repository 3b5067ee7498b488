"""Cell groups: a group's members get the bits they get alone (logistic, grid RL), tuning
trials with lambdas batched stay within float rounding, and a grouped sweep records the
same cells, metrics and report as an ungrouped one (real runner, real files)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.capabilities import groups_cells
from harness.methods.base import Method
from harness.registry import METHODS, TASKS
from harness.runner.group import plan_units
from harness.runner.sweep import run_spec
from harness.spec import validate_spec
from harness.tasks.base import CellRequest, GroupMember
from harness.tasks.groups import training_slots


def method(name: str, lam: float | None = None, **params: object) -> Method:
    return METHODS.get(name)(METHODS.config(name)(**params), lam)


def logistic(**params: object):
    return TASKS.get("logistic")(TASKS.config("logistic")(**params))


METHOD_MIX = [("baseline", None, {}), ("interpolation", 1.2, {}), ("noising", 1.2, {}),
              ("imm_sampled", 1.2, {}), ("imm_sampled", 0.7, {"k": 3}),
              ("reverse_kd", 0.5, {}), ("imm_serialized", 1.0, {"refresh_every": 2})]


def members_of(sizes: tuple[int, ...], runs: dict[int, int]) -> list[GroupMember]:
    return [GroupMember(method(name, lam, **params), CellRequest(size=size, seed=seed,
                                                                   runs=runs[seed]))
            for size in sizes for name, lam, params in METHOD_MIX for seed in runs]


def test_logistic_and_grid_rl_declare_groups_and_others_do_not():
    assert groups_cells(TASKS.get("logistic")) and groups_cells(TASKS.get("grid_rl"))
    assert not groups_cells(TASKS.get("ptb_lstm"))


def test_trains_as_primary_is_read_from_the_training_hooks():
    assert METHODS.get("baseline").trains_as_primary()
    assert METHODS.get("interpolation").trains_as_primary()
    for name in ("noising", "reverse_kd", "imm_sampled", "imm_serialized"):
        assert not METHODS.get(name).trains_as_primary(), name

    class Penalised(METHODS.get("interpolation")):  # an outside method adding a term
        def term(self, views, step):  # noqa: ANN001, ANN201
            return views.log_q().sum(-1)

    assert not Penalised.trains_as_primary()


def test_lambda_batch_is_declared_and_dropped_by_an_override():
    assert method("reverse_kd", 1.0).batches_lambda()
    assert method("imm_serialized", 1.0).batches_lambda()
    assert method("imm_sampled", 1.0).batches_lambda()
    assert not method("imm_sampled", 1.0, k=2).batches_lambda()  # its term draws
    assert not method("noising", 1.0).batches_lambda()  # its targets draw
    assert not method("baseline").batches_lambda()  # nothing to batch: trains as primary

    class Doubled(METHODS.get("reverse_kd")):  # an outside method changing the term
        def term(self, views, step):  # noqa: ANN001, ANN201
            return super().term(views, step) * 2

    assert not Doubled(METHODS.config("reverse_kd")(), 1.0).batches_lambda()


def test_logistic_group_gives_each_member_its_bits_alone():
    task = logistic(epochs=40, test_size=100)
    members = members_of((2, 9), {0: 12, 1: 7})
    grouped = dict(task.run_group(members))
    assert sorted(grouped) == list(range(len(members)))
    for index, member in enumerate(members):
        alone = task.run(member.method, member.request)
        for metric, values in alone.items():
            assert np.array_equal(values, grouped[index][metric]), (index, metric)


class _WeightsOut(TASKS.get("grid_rl")):
    """Grid RL whose evaluation also returns each run's final weights, summed in float64
    (a fingerprint far finer than the reward)."""

    def evaluate(self, method, weights, request):  # noqa: ANN001, ANN201
        out = super().evaluate(method, weights, request)
        runs = request.runs
        out["weights"] = sum(w.detach().double().reshape(runs, -1).sum(-1)
                             for w in weights).numpy()
        return out


def test_grid_rl_group_gives_each_member_its_bits_alone():
    task = _WeightsOut(TASKS.config("grid_rl")(steps_per_epoch=8, eval_rollouts=2,
                                               eval_steps=5, hidden=7))
    lam = {"interpolation": 0.2, "noising": 0.2, "reverse_kd": 0.2, "imm_sampled": 0.2,
           "imm_serialized": 0.2}
    members = [GroupMember(method(name, lam.get(name), **params),
                           CellRequest(size=size, seed=seed, runs=runs))
               for size in (2, 5) for seed, runs in ((0, 3), (1, 2))
               for name, params in (("baseline", {}), ("interpolation", {}),
                                    ("noising", {}), ("reverse_kd", {}),
                                    ("imm_sampled", {}), ("imm_serialized",
                                                          {"refresh_every": 2}))]
    grouped = dict(task.run_group(members))
    for index, member in enumerate(members):
        alone = task.run(member.method, member.request)
        for metric, values in alone.items():
            assert np.array_equal(values, grouped[index][metric]), (index, metric)


def test_lambdas_batch_only_where_the_method_allows_and_stay_within_rounding():
    task = logistic(epochs=40, validation_size=100)
    lams = (0.3, 1.1, 2.5)
    names = [("reverse_kd", {}), ("imm_sampled", {}), ("imm_sampled", {"k": 2}),
             ("noising", {})]
    members = [GroupMember(method(name, lam, **params),
                           CellRequest(size=6, seed=4, runs=5, split="validation"))
               for name, params in names for lam in lams]
    slots = training_slots(members, range(len(members)), lambdas=True)
    # reverse-KD and exact IMM batch their lambdas; sampled IMM (k=2) and noising draw
    # random numbers, so each of their trials trains alone.
    assert sorted(s.copies for s in slots) == [1] * 6 + [3, 3]
    assert all(s.copies == 1 for s in training_slots(members, range(len(members))))
    batched = dict(task.run_group(members, lambdas=True))
    for index, member in enumerate(members):
        alone = task.run(member.method, member.request)
        for metric, values in alone.items():
            np.testing.assert_allclose(batched[index][metric], values, rtol=1e-5,
                                       atol=1e-6, err_msg=f"{index} {metric}")


class _NanTerm(Method):
    """A method whose term is NaN: its runs diverge."""

    name = "nan_term"

    def term(self, views, step):  # noqa: ANN001, ANN201
        return views.log_q().sum(-1) * float("nan")


def test_a_diverging_member_fails_alone_in_its_group():
    task = logistic(epochs=5, test_size=20)
    members = [GroupMember(_NanTerm(None, 1.0), CellRequest(size=3, seed=0, runs=2)),
               GroupMember(method("baseline"), CellRequest(size=3, seed=0, runs=2)),
               GroupMember(method("reverse_kd", 1.0), CellRequest(size=3, seed=0, runs=2))]
    results = dict(task.run_group(members))
    assert "non-finite" in str(results[0])
    assert isinstance(results[1], dict) and isinstance(results[2], dict)
    assert np.array_equal(results[2]["log_loss"],
                          task.run(members[2].method, members[2].request)["log_loss"])


def test_plan_units_keeps_sizes_whole_and_balances_them():
    class C:
        def __init__(self, size: int, key: str | None = "t") -> None:
            self.size, self.key = size, key

    cells = [C(s) for s in (50, 40, 30, 20, 10, 5) for _ in range(4)] + [C(7, None)]
    units = plan_units(cells, lambda c: c.key, 2)
    grouped = [u for u in units if u[0].key is not None]
    assert len(grouped) == 2 and [u for u in units if u[0].key is None] == [[cells[-1]]]
    for unit in grouped:
        for size in {c.size for c in unit}:
            assert sum(c.size == size for c in unit) == 4  # a size never split
    loads = sorted(sum(c.size for c in u) for u in grouped)
    assert loads[1] - loads[0] <= 4 * 10
    assert len(plan_units(cells, lambda c: c.key, 1)) == 2  # one group + the loner
    apart = plan_units(cells, lambda c: c.key, 2, sizes_apart=True)  # a unit per size
    assert sorted(len(u) for u in apart) == [1] + [4] * 6


def small_spec(name: str, **over: object) -> dict:
    spec = {
        "name": name,
        "task": {"name": "logistic", "params": {"epochs": 30, "test_size": 60}},
        "methods": [{"name": "baseline"}, {"name": "interpolation", "lambda": 1.0},
                    {"name": "noising", "lambda": 1.0},
                    {"name": "imm_sampled", "label": "imm", "lambda": 1.0}],
        "sizes": [2, 5, 9], "seeds": [0, 1], "runs": 6, "metric": "accuracy",
        "tracking": {"enabled": False},
    }
    spec.update(over)
    return spec


def cell_records(root: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in root.glob("cells/*.json")}


@pytest.mark.parametrize("workers", [1, 2])
def test_grouped_sweep_records_what_an_ungrouped_one_does(tmp_path, monkeypatch, workers):
    from harness.report.run_report import write_run_report

    monkeypatch.chdir(tmp_path)
    grouped = run_spec(validate_spec(small_spec("grouped")), workers=workers)
    alone = run_spec(validate_spec(small_spec("alone")), groups=False)
    a, b = cell_records(grouped.results_dir), cell_records(alone.results_dir)
    assert set(a) == set(b) and len(a) == 24
    for cell_id, record in a.items():
        assert record["status"] == "ok"
        assert record["metrics"] == b[cell_id]["metrics"], cell_id
        assert record["timings"]["group_cells"] > 1
        assert "group_cells" not in b[cell_id]["timings"]
        # each member's own learning curve, as alone, and its own code identity
        assert record["curves"]["train_loss"]["values"], cell_id
        assert record["curves"] == b[cell_id]["curves"], cell_id
        assert record["code"] == b[cell_id]["code"] and record["code"]["task"], cell_id
    md = [write_run_report(s.results_dir).markdown for s in (grouped, alone)]
    body = [p.read_text().replace(s, "SPEC") for p, s in zip(md, ("grouped", "alone"),
                                                               strict=True)]
    assert body[0] == body[1]


def test_default_workers_run_a_grid_with_helpers_and_the_same_records(tmp_path,
                                                                      monkeypatch):
    monkeypatch.chdir(tmp_path)
    auto = run_spec(validate_spec(small_spec("auto")), workers=None)
    one = run_spec(validate_spec(small_spec("one")), workers=1)
    a, b = cell_records(auto.results_dir), cell_records(one.results_dir)
    assert len(a) == len(b) == 24  # a helper's cells too (handed to it while it started)
    assert {k: r["metrics"] for k, r in a.items()} == {k: r["metrics"] for k, r in b.items()}
    assert {r["threads"] for r in a.values()} == {1}  # the logistic task's own choice
    assert torch.get_num_threads() >= 1


def test_each_cell_of_a_group_gets_its_own_checkpoint_dir_and_deletion(tmp_path,
                                                                       monkeypatch):
    """A group's members carry their own cells' checkpoint folders; a member that fails
    keeps its folder (retried on the next run), the others' are deleted with their final
    records."""
    from harness.runner.execute import CHECKPOINT_ENV
    from harness.runner.store import ResultsStore
    from harness.tasks.logistic.task import LogisticTask

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(CHECKPOINT_ENV, raising=False)
    seen: dict[str, str | None] = {}
    original = LogisticTask.run_group

    def run_group(self, members, progress=None, **kwargs):  # noqa: ANN001, ANN202
        kept = []
        for index, member in enumerate(members):
            root = Path(member.request.checkpoint_dir)
            seen[member.method.name] = str(root)
            root.mkdir(parents=True, exist_ok=True)
            (root / "run0.pt").write_text("weights")
            if member.method.name == "noising":
                yield index, RuntimeError("a bug, fixed before the next run")
            else:
                kept.append(index)
        for sub, result in original(self, [members[i] for i in kept], progress, **kwargs):
            yield kept[sub], result

    monkeypatch.setattr(LogisticTask, "run_group", run_group)
    spec = validate_spec(small_spec("ckpt", sizes=[3], seeds=[0]))
    store = ResultsStore.for_spec(spec)
    run_spec(spec)
    cells = {r["method"]: r["cell_id"] for r in cell_records(store.root).values()}
    assert seen == {m: str(store.checkpoint_dir(c).resolve()) for m, c in cells.items()}
    status = {r["method"]: r["status"] for r in cell_records(store.root).values()}
    assert status["noising"] == "failed" and status["baseline"] == "ok"
    assert [p.name for p in (store.root / "checkpoints").iterdir()] == [cells["noising"]]

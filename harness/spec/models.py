"""The spec schema: a grid of task x method x dataset size x seed, validated by pydantic.

Task and method entries are discriminated unions keyed by ``name``, built from the
registries, so a new task or method is picked up by registering it; an error then
speaks only of the chosen variant.
"""

from __future__ import annotations

import difflib
import functools
import re
import unicodedata
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    PrivateAttr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from harness.registry import METHODS, TASKS
from harness.spec.lambdas import LambdaSpec, TuneLambda
from harness.spec.plot import PlotSettings
from harness.spec.strict import StrictModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"


class TuningSettings(StrictModel):
    """Optuna settings for methods whose lambda is "tune"."""

    trials: PositiveInt = Field(20, description="trials per (method, size) study")
    sampler: Literal["tpe", "random"] = "tpe"
    runs: PositiveInt | None = Field(
        None, description="replicates per trial (default: the spec's runs)"
    )
    seed: int = Field(0, description="seed of the sampler and of the validation data")
    objective: Literal["mean", "median"] = Field(
        "mean", description="how a trial's per-run validation metrics are summarised"
    )


class TrackingSettings(StrictModel):
    """MLflow tracking: one parent run per spec, one child run per cell."""

    enabled: bool = True
    uri: str | None = Field(
        None, description="tracking URI; default sqlite:///<output_dir>/mlflow.db"
    )
    experiment: str | None = Field(None, description="experiment name; default: the spec name")


def _whole_or_fraction(value: float | None, what: str) -> None:
    if value is not None and value > 1 and value != int(value):
        raise ValueError(f"{what}: {value} is neither a whole number nor a fraction below 1 "
                         "(how Ray shares a device)")


class Resources(StrictModel):
    """What one cell needs on a cluster node (operational: not in the cell id). The Ray
    executor reserves them per cell task (Ray sets ``CUDA_VISIBLE_DEVICES``); the local
    executor gives each worker process ``gpus`` of the visible GPUs (at least one) when
    several are visible."""

    gpus: float = Field(0, ge=0, description="GPUs per cell (a fraction below 1 shares one)")
    cpus: float = Field(1, gt=0, description="CPU cores per cell (also its torch threads "
                        "on Ray unless threads is set)")

    @model_validator(mode="after")
    def _shares(self) -> Resources:
        _whole_or_fraction(self.gpus, "gpus")
        return self


class ResourcesOverride(StrictModel):
    """A method's own resources; a field left out is the task's."""

    gpus: float | None = Field(None, ge=0)
    cpus: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _shares(self) -> ResourcesOverride:
        _whole_or_fraction(self.gpus, "gpus")
        return self


STORE_PATTERN = r"^(postgresql|postgresql\+psycopg|postgres)://\S+$"


class MethodEntryBase(StrictModel):
    """Fields every method entry has; ``params`` is added per method."""

    model_config = ConfigDict(populate_by_name=True)
    label: str | None = Field(
        None, description="name in reports; default: the method name (must be unique)"
    )
    lambda_: LambdaSpec | None = Field(None, alias="lambda")
    task_params: dict[str, Any] = Field(
        default_factory=dict,
        description="task params overridden for this method only (e.g. the restricted "
        "model's quality); checked against the task's params",
    )
    resources: ResourcesOverride | None = Field(
        None, description="this method's cells' resources over the task's (operational)"
    )

    @field_validator("label")
    @classmethod
    def _printable_label(cls, value: str | None) -> str | None:
        """A label is a column of every table: a newline or another control character
        would break the report's rows, so it is refused here, at validate."""
        if value is not None:
            bad = next((ch for ch in value if unicodedata.category(ch).startswith("C")),
                       None)
            if bad is not None:
                raise ValueError(f"{value!r} holds a control character ({bad!r}); a label "
                                 "is one line of printable text")
            if not value.strip():
                raise ValueError("a label must not be empty")
        return value

    @property
    def display(self) -> str:
        return self.label or self.name  # type: ignore[attr-defined]

    @property
    def tuned(self) -> bool:
        return isinstance(self.lambda_, TuneLambda)

    @model_validator(mode="after")
    def _lambda_presence(self) -> MethodEntryBase:
        uses = type(self.params).uses_lambda  # type: ignore[attr-defined]
        if uses and self.lambda_ is None:
            raise ValueError(f"method '{self.name}' needs a lambda")  # type: ignore[attr-defined]
        if not uses and self.lambda_ is not None:
            raise ValueError(f"method '{self.name}' takes no lambda")  # type: ignore[attr-defined]
        return self


class TaskEntryBase(StrictModel):
    """Fields every task entry has; ``name`` and ``params`` are added per task."""

    resources: Resources = Field(
        default_factory=Resources,
        description="what each cell needs on a cluster node: {gpus, cpus} (operational: "
        "not in the cell id)",
    )


def _entry_model(base: type[BaseModel], name: str, params: type[BaseModel]) -> type[BaseModel]:
    title = "".join(p.title() for p in name.split("_"))
    return create_model(
        f"{title}{'Method' if base is MethodEntryBase else 'Task'}Entry",
        __base__=base,
        name=(Literal[name], ...),
        params=(params, Field(default_factory=params)),
    )


def spec_model() -> type[BaseModel]:
    """The Spec model class, built from the registered tasks and methods (installed
    plugins included); rebuilt when a spec's plugins register more."""
    from harness.registry import discover

    discover()
    return _spec_model(TASKS.version, METHODS.version)


@functools.cache
def _spec_model(tasks_version: int, methods_version: int) -> type[BaseModel]:
    task_variants = tuple(_entry_model(TaskEntryBase, n, TASKS.config(n)) for n in TASKS)
    method_variants = tuple(_entry_model(MethodEntryBase, n, METHODS.config(n)) for n in METHODS)
    TaskEntry = Annotated[_union(task_variants), Field(discriminator="name")]
    MethodEntry = Annotated[_union(method_variants), Field(discriminator="name")]

    class Spec(StrictModel):
        """A benchmark grid: one task, several methods, dataset sizes and seeds."""

        name: str = Field(pattern=NAME_PATTERN, description="names results/<name>/")
        description: str = ""
        plugins: list[str] = Field(
            default_factory=list,
            description="modules (or .py files beside the spec) that register outside tasks "
            "or methods; installed plugins need no entry here",
        )
        task: TaskEntry  # type: ignore[valid-type]
        methods: list[MethodEntry] = Field(min_length=1)  # type: ignore[valid-type]
        sizes: list[PositiveInt] = Field(min_length=1, description="dataset sizes")
        seeds: list[NonNegativeInt] = Field([0], min_length=1, description="one cell per seed")
        runs: PositiveInt = Field(
            1, description="replicates trained together (batched) inside each cell"
        )
        metric: str | None = Field(None, description="headline metric; default: the task's first")
        tuning: TuningSettings = Field(default_factory=TuningSettings)
        output_dir: str = Field("results", description="results go to <output_dir>/<name>/")
        data_dir: str | None = Field(
            None, description="where data files are (else --data-dir or HARNESS_DATA_DIR)"
        )
        tracking: TrackingSettings = Field(default_factory=TrackingSettings)
        threads: PositiveInt | None = Field(
            None,
            description="torch intra-op threads of each cell process (operational: not in "
            "the cell id); default: the task's choice (1 for small launch-bound tasks), "
            "else the available cores divided by the workers",
        )
        store: str | None = Field(
            None,
            description="shared store of cells, leases and results (operational): "
            "postgresql+psycopg://USER@HOST:PORT/DB; --store overrides it",
        )
        plot: PlotSettings = Field(
            default_factory=PlotSettings,
            description="the report's figures: title, size-axis scale, which methods, "
            "legend and axis labels (presentation: not in the cell id)",
        )
        # The file this spec was read from (harness.spec.load_spec); relative paths of
        # the spec are taken from its project folder (harness.spec.paths).
        _spec_file: Any = PrivateAttr(default=None)

        @field_validator("store")
        @classmethod
        def _store_url(cls, value: str | None) -> str | None:
            if value is not None and not re.match(STORE_PATTERN, value):
                from harness.masking import mask

                raise ValueError(f"{mask(value)!r} is not a PostgreSQL URL; expected "
                                 "postgresql+psycopg://USER@HOST:PORT/DB")
            return value

        @field_validator("sizes", "seeds")
        @classmethod
        def _unique(cls, value: list[int]) -> list[int]:
            if len(set(value)) != len(value):
                raise ValueError("values must be unique")
            return value

        @model_validator(mode="after")
        def _check(self) -> Spec:
            labels = [m.display for m in self.methods]
            dupes = sorted({x for x in labels if labels.count(x) > 1})
            if dupes:
                raise ValueError(
                    f"methods: duplicate label(s) {', '.join(dupes)}; give each a distinct 'label'"
                )
            problems = [
                f"methods[{i}].task_params.{problem}"
                for i, entry in enumerate(self.methods)
                for problem in _override_problems(self, entry)
            ]
            if problems:
                raise ValueError("\n".join(problems))
            known = type(self.task.params).metrics
            if self.metric is None:
                self.metric = known[0]
            elif self.metric not in known:
                raise ValueError(
                    f"metric: unknown metric {self.metric!r} for task '{self.task.name}'; "
                    f"known: {', '.join(known)}"
                )
            plot_problems = self.plot.problems(labels, known)
            if plot_problems:
                raise ValueError("\n".join(plot_problems))
            return self

    return Spec


def task_params_for(spec: Any, entry: Any) -> Any:
    """The task params a method entry runs with: the spec's, with its overrides applied."""
    if not entry.task_params:
        return spec.task.params
    merged = {**spec.task.params.model_dump(), **entry.task_params}
    return type(spec.task.params).model_validate(merged)


def resources_for(spec: Any, entry: Any) -> dict[str, float]:
    """{cpus, gpus} one cell of a method entry needs: the task's, with the entry's own
    resources over them."""
    base = spec.task.resources
    own = entry.resources
    return {
        "cpus": float(own.cpus if own is not None and own.cpus is not None else base.cpus),
        "gpus": float(own.gpus if own is not None and own.gpus is not None else base.gpus),
    }


def _override_problems(spec: Any, entry: Any) -> list[str]:
    """One message per invalid ``task_params`` key of a method entry."""
    try:
        task_params_for(spec, entry)
    except ValidationError as exc:
        params_model = type(spec.task.params)
        out = {}
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            if err["type"] == "extra_forbidden":
                hint = difflib.get_close_matches(field, list(params_model.model_fields), 1, 0.6)
                msg = "unknown field" + (f" (did you mean '{hint[0]}'?)" if hint else "")
            else:
                msg = err["msg"].removeprefix("Value error, ")
            out.setdefault(field, msg)
        return [f"{field}: {msg}" for field, msg in out.items()]
    return []


def _union(variants: tuple[type[BaseModel], ...]) -> Any:
    if len(variants) == 1:
        return variants[0]
    union = variants[0]
    for v in variants[1:]:
        union = union | v
    return union


def is_valid_name(name: str) -> bool:
    return re.match(NAME_PATTERN, name) is not None

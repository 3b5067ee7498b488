"""``harness init``: new specs, method plugins and task plugins, written from templates.

- ``init_spec``: a spec for a registered task, its settings listed at their defaults
  (commented), the tiny settings the task's contract tests use switched on so the spec
  runs in seconds, and the methods asked for.
- ``init_method`` / ``init_task``: a plugin package (``harness-NAME/``) with its entry
  point, params model, class, a smoke spec, a README and tests that run harness's contract
  tests on the new component. Installed with ``pip install -e``, it passes them as
  generated; you then replace the example body with your own.

Templates are files under ``templates/`` (``string.Template`` placeholders: ``$name``,
``$package``, ``$dist``, ``$Class``, ``$Params``; ``PACKAGE`` and ``NAME`` in paths).
Nothing existing is overwritten: a target that exists is one line and nothing is written.
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from harness.errors import HarnessError

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]*\Z")
TEMPLATES = "templates"


@dataclass(frozen=True)
class Names:
    """The names one component goes by: entry point, import package, distribution, class."""

    name: str  # entry point and spec name: my_method
    package: str  # import package: harness_my_method
    dist: str  # distribution and folder: harness-my-method
    cls: str  # class: MyMethod
    params: str  # params model: MyMethodParams

    @classmethod
    def of(cls, name: str, kind: str) -> Names:
        check_name(name, kind)
        camel = "".join(part.capitalize() for part in name.split("_") if part)
        return cls(name=name, package=f"harness_{name}",
                   dist="harness-" + name.replace("_", "-"), cls=camel,
                   params=f"{camel}Params")

    def mapping(self) -> dict[str, str]:
        return {"name": self.name, "package": self.package, "dist": self.dist,
                "Class": self.cls, "Params": self.params}


def check_name(name: str, kind: str) -> None:
    """A spec's name as specs allow it; a method's or task's one that can be an entry
    point, a module and a class, and is not taken."""
    if kind == "spec":
        from harness.spec.models import is_valid_name

        if not is_valid_name(name):
            raise HarnessError(f"spec name {name!r}: use letters, digits, '_', '.' and "
                               "'-', starting with a letter or digit (e.g. my_study)")
        return
    if not NAME_PATTERN.match(name) or keyword.iskeyword(name):
        raise HarnessError(f"{kind} name {name!r}: use lower-case letters, digits and "
                           "underscores, starting with a letter (e.g. my_{kind})")
    from harness.registry import METHODS, TASKS, discover

    discover()
    if name in (METHODS if kind == "method" else TASKS):
        raise HarnessError(f"{kind} name {name!r} is taken (harness list {kind}s); "
                           "choose another")


def _render_tree(kind: str, names: Names, dest: Path) -> list[Path]:
    """Every template file of ``kind`` rendered under ``dest`` (which must not exist)."""
    if dest.exists():
        raise HarnessError(f"{dest}: already exists; harness init writes only new folders")
    root = resources.files("harness.scaffold").joinpath(TEMPLATES, kind)
    values = names.mapping()
    files: dict[Path, str] = {}
    stack = [(root, Path())]
    while stack:
        node, rel = stack.pop()
        for child in node.iterdir():
            part = child.name.replace("PACKAGE", names.package).replace("NAME", names.name)
            if child.is_dir():
                stack.append((child, rel / part))
            elif part.endswith(".tmpl"):
                text = Template(child.read_text(encoding="utf-8")).substitute(values)
                files[rel / part.removesuffix(".tmpl")] = text
    for rel, text in sorted(files.items()):
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return sorted(dest / rel for rel in files)


def init_method(name: str, where: Path) -> Path:
    """A method plugin package ``where/harness-NAME``; returns its folder."""
    names = Names.of(name, "method")
    dest = where / names.dist
    _render_tree("method", names, dest)
    return dest


def init_task(name: str, where: Path) -> Path:
    """A task plugin package ``where/harness-NAME``; returns its folder."""
    names = Names.of(name, "task")
    dest = where / names.dist
    _render_tree("task", names, dest)
    return dest


def init_spec(name: str, where: Path, task: str = "logistic",
              methods: tuple[str, ...] = ("baseline", "imm_sampled"),
              sizes: tuple[int, ...] | None = None) -> Path:
    """A spec file ``where/NAME.yaml`` for ``task``; returns its path."""
    from harness.scaffold.spec import spec_text

    check_name(name, "spec")
    dest = where / f"{name}.yaml"
    if dest.exists():
        raise HarnessError(f"{dest}: already exists; harness init writes only new files")
    text = spec_text(name, task, methods, sizes)
    where.mkdir(parents=True, exist_ok=True)
    dest.write_text(text, encoding="utf-8")
    return dest


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise HarnessError(f"{flag} {text!r}: expected whole numbers separated by commas, "
                           "e.g. 5,20") from None
    if not values or min(values) < 1:
        raise HarnessError(f"{flag} {text!r}: expected positive whole numbers, e.g. 5,20")
    return values


def init_command(args: Any) -> int:
    """``harness init spec|method|task NAME``: write it, then say what to do next."""
    where = Path(args.dir)
    if args.kind == "spec":
        methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
        sizes = _int_list(args.sizes, "--sizes") if args.sizes else None
        path = init_spec(args.name, where, args.task, methods, sizes)
        print(f"wrote {path}\n  harness validate {path}\n  harness run {path} --workers 2")
        return 0
    make = init_method if args.kind == "method" else init_task
    folder = make(args.name, where)
    written = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    print(f"wrote {folder}/: {', '.join(written)}")
    print(f"  pip install -e {folder}\n  (cd {folder} && pytest)      # harness's contract tests"
          f"\n  harness run {folder / 'specs' / (args.name + '.yaml')} --workers 2")
    return 0

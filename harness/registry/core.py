"""One generic registry for every kind of named component (tasks, methods, ...).

Entries are registered either eagerly (a decorator on the object) or lazily by a
``"module:attr"`` string, so that listing names and validating specs never imports
torch or transformers. A lookup of an unknown name fails with one line that suggests
the closest registered name and lists them all.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; its message is one readable line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RegistryFrozenError(RuntimeError):
    """Raised when something registers after the registry was frozen."""


def did_you_mean(name: str, candidates: list[str]) -> str:
    """Return " Did you mean: x?" for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" Did you mean: {close[0]}?" if close else ""


def load_target(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"lazy target {target!r} must look like 'module:attr'")
    return getattr(importlib.import_module(module_name), attr)


@dataclass
class Entry(Generic[T]):
    """A registered name: its object (or lazy target), description and config model."""

    name: str
    target: T | str
    description: str = ""
    config: Any = None  # a pydantic model class, or a lazy "module:attr" string

    def load(self) -> T:
        if isinstance(self.target, str):
            self.target = load_target(self.target)
        return self.target  # type: ignore[return-value]

    def load_config(self) -> Any:
        if isinstance(self.config, str):
            self.config = load_target(self.config)
        return self.config


class Registry(Generic[T]):
    """Maps names of one kind (``kind`` is used in messages, e.g. "task") to objects."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._frozen = False

    def register(
        self, name: str, *, description: str = "", config: Any = None
    ) -> Callable[[T], T]:
        """Decorator: ``@TASKS.register("logistic", description=...)``."""

        def decorate(obj: T) -> T:
            self.add(name, obj, description=description or _first_doc_line(obj), config=config)
            return obj

        return decorate

    def add(self, name: str, target: T | str, *, description: str = "", config: Any = None) -> None:
        """Register ``target`` (an object or a lazy ``"module:attr"``) under ``name``."""
        if self._frozen:
            raise RegistryFrozenError(f"the {self.kind} registry is frozen; cannot add {name!r}")
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, target, description, config)

    def freeze(self) -> None:
        self._frozen = True

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            names = sorted(self._entries)
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, names)}"
                f" Registered {self.kind}s: {', '.join(names)}"
            ) from None

    def get(self, name: str) -> T:
        """The registered object, importing a lazy target on first use."""
        return self.entry(name).load()

    def config(self, name: str) -> Any:
        """The config (params) model registered with ``name``."""
        return self.entry(name).load_config()

    def names(self) -> list[str]:
        return list(self._entries)

    def describe(self) -> list[tuple[str, str]]:
        return [(e.name, e.description) for e in self._entries.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


def _first_doc_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""

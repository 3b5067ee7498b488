"""One generic registry for every kind of named component (tasks, methods, ...).

Entries are registered eagerly (an object) or lazily by a ``"module:attr"`` string, so
that listing names and validating specs never imports torch or transformers. Each entry
states its class and its params (config) model explicitly, and where it comes from
(``origin``: built-in, an installed plugin's entry point, a spec's plugin module). When a
registry has a ``base``, a target that is not a subclass of it is refused when it loads,
with one line naming the entry and its origin. A lookup of an unknown name fails with one
line that suggests the closest registered name and lists them all (and, when an installed
plugin that failed to load was the one to provide it, why).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")
BUILT_IN = "built-in"


class UnknownNameError(KeyError):
    """Raised for a name that is not registered; its message is one readable line."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RegistryFrozenError(RuntimeError):
    """Raised when something registers after the registry was frozen."""


class PluginError(Exception):
    """A component that cannot be loaded or is not what it claims to be; one line."""


def did_you_mean(name: str, candidates: list[str]) -> str:
    """Return " Did you mean: x?" for the closest candidate, or "" when none is close."""
    close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return f" Did you mean: {close[0]}?" if close else ""


def load_target(target: str) -> Any:
    """Import ``"package.module:attr"`` and return the attribute."""
    module_name, _, attr = target.partition(":")
    if not attr:
        raise ValueError(f"lazy target {target!r} must look like 'module:attr'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ImportError(f"module {module_name!r} has no attribute {attr!r}") from None


@dataclass
class Entry(Generic[T]):
    """A registered name: its object (or lazy target), params model, description, origin."""

    name: str
    target: T | str
    description: str = ""
    config: Any = None  # a pydantic model class, or a lazy "module:attr" string
    origin: str = BUILT_IN
    base: Any = None  # the class ``target`` must subclass (or a lazy string)
    config_base: Any = None  # the class ``config`` must subclass (or a lazy string)

    def _checked(self, value: Any, base: Any, what: str) -> Any:
        if isinstance(value, str):
            try:
                value = load_target(value)
            except Exception as exc:  # noqa: BLE001 - any import error is the plugin's
                raise PluginError(f"{self.name} ({self.origin}): cannot load its {what} "
                                  f"{value!r}: {type(exc).__name__}: {exc}") from None
        if base is not None:
            base = load_target(base) if isinstance(base, str) else base
            if not (isinstance(value, type) and issubclass(value, base)):
                raise PluginError(f"{self.name} ({self.origin}): its {what} {value!r} is not "
                                  f"a subclass of {base.__module__}.{base.__qualname__}")
        return value

    def load(self) -> T:
        self.target = self._checked(self.target, self.base, "class")
        return self.target  # type: ignore[return-value]

    def load_config(self) -> Any:
        if self.config is not None:
            self.config = self._checked(self.config, self.config_base, "params model")
        return self.config


class Registry(Generic[T]):
    """Maps names of one kind (``kind`` is used in messages, e.g. "task") to objects.

    ``base`` / ``config_base``: the classes every target and params model must subclass
    (lazy strings allowed, so that importing the registry stays light).
    """

    def __init__(self, kind: str, base: Any = None, config_base: Any = None) -> None:
        self.kind = kind
        self.base, self.config_base = base, config_base
        self._entries: dict[str, Entry[T]] = {}
        self._frozen = False
        self.broken: dict[str, str] = {}  # name -> why its plugin could not be loaded
        self.version = 0  # bumped on every change (the spec schema is rebuilt)

    def register(
        self, name: str, *, description: str = "", config: Any = None, origin: str = BUILT_IN
    ) -> Callable[[T], T]:
        """Decorator: ``@TASKS.register("logistic", config=LogisticParams)``."""

        def decorate(obj: T) -> T:
            self.add(name, obj, description=description or _first_doc_line(obj),
                     config=config, origin=origin)
            return obj

        return decorate

    def add(self, name: str, target: T | str, *, config: Any = None, description: str = "",
            origin: str = BUILT_IN) -> None:
        """Register ``target`` (a class or a lazy ``"module:attr"``) and its params model
        ``config`` under ``name``."""
        if self._frozen:
            raise RegistryFrozenError(f"the {self.kind} registry is frozen; cannot add {name!r}")
        if name in self._entries:
            have = self._entries[name]
            if (have.origin, have.target) == (origin, target):
                return  # the same plugin loaded twice (a spec and a worker): harmless
            raise PluginError(f"{self.kind} {name!r} from {origin} is already registered "
                              f"({have.origin})")
        self._entries[name] = Entry(name, target, description, config, origin, self.base,
                                    self.config_base)
        self.broken.pop(name, None)
        self.version += 1

    def remove(self, name: str) -> None:
        """Forget ``name`` (a plugin whose params model failed to load)."""
        if self._entries.pop(name, None) is not None:
            self.version += 1

    def freeze(self) -> None:
        self._frozen = True

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            names = sorted(self._entries)
            why = (f" ({name!r} comes from a plugin that failed to load: {self.broken[name]})"
                   if name in self.broken else "")
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, names)}{why}"
                f" Registered {self.kind}s: {', '.join(names)}"
            ) from None

    def get(self, name: str) -> T:
        """The registered class, importing a lazy target on first use (and checking it)."""
        return self.entry(name).load()

    def config(self, name: str) -> Any:
        """The config (params) model registered with ``name``."""
        return self.entry(name).load_config()

    def names(self) -> list[str]:
        return list(self._entries)

    def describe(self) -> list[tuple[str, str]]:
        return [(e.name, e.description) for e in self._entries.values()]

    def origins(self) -> list[tuple[str, str, str]]:
        """(name, origin, description) of every entry."""
        return [(e.name, e.origin, e.description) for e in self._entries.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))

    def __len__(self) -> int:
        return len(self._entries)


def _first_doc_line(obj: Any) -> str:
    doc = getattr(obj, "__doc__", None) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""

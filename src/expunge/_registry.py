"""A small generic registry with decorator registration, auto-discovery and "did you mean" errors.

Adding a method, metric, model or dataset means writing one module that decorates its object: the package's
``__init__`` never lists them. On the first lookup the registry imports every non-underscore module of its package
(``pkgutil.iter_modules``) and every module advertised under its entry-point group, so third-party plugins register
the same way.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.metadata
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from expunge.errors import DuplicateRegistration, UnknownName

T = TypeVar("T")


def doc_summary(obj: object) -> str:
    """The first line of ``obj``'s docstring, "" without one: a registered plug-in's one-line summary."""
    return next(iter((obj.__doc__ or "").strip().splitlines()), "")


class Registry(Generic[T]):
    """Name → object mapping for one kind of thing (``"method"``, ``"metric"``, ...)."""

    def __init__(self, kind: str, *, package: str | None = None, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self._package = package
        self._group = entry_point_group
        self._items: dict[str, T] = {}
        self._discovered = package is None and entry_point_group is None

    def register(self, name: str, obj: T, *, override: bool = False) -> T:
        if name in self._items and not override and self._items[name] is not obj:
            raise DuplicateRegistration(f"{self.kind} {name!r} is already registered; pass override=True to replace it")
        self._items[name] = obj
        return obj

    def unregister(self, name: str) -> T:
        """Remove ``name`` and return what it named (plugins and tests that register something temporarily).

        Raises:
            UnknownName: Nothing is registered under ``name``.
        """
        obj = self.get(name)
        del self._items[name]
        return obj

    def decorator(self, name_attr: str = "name") -> Callable[[T], T]:
        """Return a decorator registering a class under its ``name`` class attribute."""

        def deco(obj: T) -> T:
            return self.register(getattr(obj, name_attr), obj)

        return deco

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True  # set first: discovered modules call register() and may look things up
        if self._package is not None:
            pkg = importlib.import_module(self._package)
            for info in pkgutil.iter_modules(pkg.__path__):
                if not info.name.startswith("_"):
                    importlib.import_module(f"{self._package}.{info.name}")
        if self._group is not None:
            for ep in importlib.metadata.entry_points(group=self._group):
                importlib.import_module(ep.value.split(":")[0])

    def get(self, name: str) -> T:
        self._discover()
        try:
            return self._items[name]
        except KeyError:
            close = difflib.get_close_matches(name, list(self._items), n=3)
            raise UnknownName(self.kind, name, self._items, close) from None

    def names(self) -> list[str]:
        self._discover()
        return sorted(self._items)

    def items(self) -> Iterator[tuple[str, T]]:
        for name in self.names():
            yield name, self._items[name]

    def __contains__(self, name: object) -> bool:
        self._discover()
        return name in self._items

    def __len__(self) -> int:
        self._discover()
        return len(self._items)

"""Hyperparameter dataclasses: paper defaults as field defaults, declared ranges, typed CLI overrides.

Declare a field with :func:`hp` — default, help text, bounds, choices and an optional search space for tuning —
and :class:`Hyperparams` validates every instance from that metadata, parses ``NAME=VALUE`` overrides by the field's
type and describes itself for ``expunge methods``.

Validation promises: every float (a float field, an optional float that is set, each element of a tuple) is finite —
NaN and ±inf are refused whatever the bounds, because a NaN compares False with every bound and ``lr=nan`` would
otherwise reach the optimiser and leave the model unchanged (or NaN); ``low``/``high`` apply to a set optional value
and to each element of a tuple; a ``None`` optional value is not bounded. A refusal is an
:class:`~expunge.errors.InvalidHyperparameter` naming the owner, the field, the value and the fix.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import typing
from collections.abc import Mapping, Sequence
from typing import Any, Self

from expunge.errors import InvalidHyperparameter


def hp(default: Any, help: str, *, low: float | None = None, high: float | None = None,
       low_open: bool = False, choices: Sequence[Any] | None = None,
       search: tuple[float, float] | Sequence[Any] | None = None, log: bool = False) -> Any:
    """A dataclass field with validation bounds and an optional tuning space (``search``: (low, high) or choices)."""
    meta = {"help": help, "low": low, "high": high, "low_open": low_open, "choices": choices, "search": search,
            "log": log}
    if isinstance(default, (list, dict, set)):
        raise TypeError("use tuples for sequence defaults (hyperparameters are frozen)")
    return dataclasses.field(default=default, metadata=meta)


def _type_name(typ: Any) -> str:
    """``int``, ``float | None``, ``Literal['sgd', 'adam']``: a field's type as written, not ``<class 'int'>``."""
    if typ is None:
        return ""
    return typ.__name__ if isinstance(typ, type) else str(typ).replace("typing.", "")


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {text!r}")


@dataclasses.dataclass(frozen=True, kw_only=True)
class Hyperparams:
    """Base class. Subclasses are frozen, keyword-only dataclasses whose fields are declared with :func:`hp`."""

    owner: typing.ClassVar[str] = "method"

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            value, meta = getattr(self, f.name), f.metadata
            expected = hints.get(f.name)
            if expected in (int, float) and (isinstance(value, bool) or not isinstance(value, (int, float))):
                self._fail(f.name, value, f"a {expected.__name__}")
            if expected is int and isinstance(value, float):
                self._fail(f.name, value, "an int")
            items = value if isinstance(value, tuple) else () if value is None else (value,)
            numbers = [v for v in items if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if any(isinstance(v, float) and not math.isfinite(v) for v in numbers):
                self._fail(f.name, value, "a finite number")
            low, high = meta.get("low"), meta.get("high")
            or_none = " (or none)" if type(None) in typing.get_args(expected) else ""
            if low is not None and any(v < low or (meta.get("low_open") and v == low) for v in numbers):
                self._fail(f.name, value, f"a number {'>' if meta.get('low_open') else '>='} {low}{or_none}")
            if high is not None and any(v > high for v in numbers):
                self._fail(f.name, value, f"a number <= {high}{or_none}")
            if meta.get("choices") is not None and value not in meta["choices"]:
                self._fail(f.name, value, f"one of {list(meta['choices'])}")
        self.validate()

    def validate(self) -> None:
        """Cross-field checks; override in subclasses."""

    def _fail(self, name: str, value: Any, what: str) -> None:
        default = next((f.default for f in dataclasses.fields(self) if f.name == name), dataclasses.MISSING)
        example = "" if default is dataclasses.MISSING else f" (the default is {name}={default!r})"
        raise InvalidHyperparameter(f"the {name!r} parameter of {self.owner} must be {what}; got {value!r}. "
                                    f"Fix: set {name} to {what}{example}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def describe(cls) -> list[dict[str, Any]]:
        return [{"name": f.name, "default": f.default, "type": _type_name(typing.get_type_hints(cls).get(f.name)),
                 "help": f.metadata.get("help", ""), "search": f.metadata.get("search")}
                for f in dataclasses.fields(cls)]

    @classmethod
    def from_overrides(cls, overrides: Mapping[str, Any], *, base: Hyperparams | None = None) -> Self:
        """Build from ``{name: value}`` where values may be strings (CLI ``--param name=value``)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        hints = typing.get_type_hints(cls)
        values = base.to_dict() if base is not None else {}
        for name, raw in overrides.items():
            if name not in fields:
                close = difflib.get_close_matches(name, list(fields), n=3)
                hint = f" Did you mean {', '.join(close)}?" if close else ""
                raise InvalidHyperparameter(f"{cls.owner} has no parameter {name!r}.{hint} Parameters: "
                                            f"{', '.join(fields)}")
            values[name] = _coerce(name, raw, hints[name], cls.owner) if isinstance(raw, str) else raw
        return cls(**values)


def _coerce(name: str, raw: str, typ: Any, owner: str) -> Any:
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    try:
        if typ is bool:
            return _parse_bool(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typ is str:
            return raw
        if origin is typing.Literal:
            if raw not in args:
                raise ValueError(f"choose one of {list(args)}")
            return raw
        if origin is tuple:
            inner = args[0] if args else str
            return tuple(_coerce(name, part, inner, owner) for part in raw.split(",") if part.strip())
        if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            non_none = [a for a in args if a is not type(None)]
            if raw.lower() in ("none", "null"):
                return None
            return _coerce(name, raw, non_none[0], owner)
    except ValueError as exc:
        raise InvalidHyperparameter(f"cannot read {name}={raw!r} for {owner} as {typ}: {exc}") from None
    return raw

"""The grid config of ``expunge bench``: datasets × models × requests × seeds × methods, from one YAML file.

    name: digits                       # optional, shown in progress and results
    datasets: [digits]
    models: [mlp]
    recipe: {epochs: 10, lr: 0.002}    # optional overrides of each dataset's default training recipe
    requests:
      - forget: class:3                # a forget spec (as --forget) ...
      - scenario: sequential           # ... or a scenario with its parameters (as `expunge scenarios` lists)
        params: {k: 3, base: "random:0.02"}
    methods:
      - finetune                       # a name: the shipped preset for the request, else the paper's defaults
      - {name: ssd, params: {alpha: 10}, label: "ssd a10"}
      - {name: neggrad, paper_defaults: true}
      - {name: ssd, label: "ssd [tuned]", requests: [class:3]}  # only on these requests (labels)
    tier: 0                            # every metric up to this tier, or `metrics: [forget_acc, test_acc]`
    tier2: {shadows: 8, models: 4}     # optional: sizes of the tier-2 pipelines (U-LiRA's K, KLoM's N)
    seeds: [0, 1]

:func:`load_config` validates the shape and every name here (pydantic, ``extra="forbid"``): an unknown key is an
error naming it and the allowed keys; an unknown method, metric, scenario, dataset or model names the known ones with
"did you mean". Values that depend on the combination (a method's parameters under its preset, a scenario's
parameters, a model that cannot take a dataset) are checked when the grid is expanded (:mod:`expunge.harness.grid`),
still before anything is trained or written. Every failure is a :class:`BenchConfigError`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from expunge.errors import ExpungeError
from expunge.train.loop import OptimizerName, ScheduleName

SEED_LIMIT = 2**32


class BenchConfigError(ExpungeError, ValueError):
    """A grid config that cannot be run: unreadable YAML, an unknown key, name or value. The message names the
    config file, the place in it (``methods[1].params``) and the allowed keys or values. Nothing is written."""


class _Strict(BaseModel):
    """Unknown keys are refused with the allowed ones and a "did you mean" (pydantic's own message lists neither)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            allowed = list(cls.model_fields)
            for key in data:
                if key not in allowed:
                    close = difflib.get_close_matches(str(key), allowed, n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise ValueError(f"unknown key {key!r}.{hint} Allowed keys: {', '.join(allowed)}")
        return data


def _registered(kind: str, name: str) -> str:
    """``name`` when the registry of ``kind`` holds it; else a ValueError with the registry's suggestions."""
    from expunge.data.datasets import DATASETS
    from expunge.methods.base import METHODS
    from expunge.metrics.base import METRICS
    from expunge.models.registry import MODELS
    from expunge.scenarios.base import SCENARIOS

    registry = {"dataset": DATASETS, "model": MODELS, "method": METHODS, "metric": METRICS,
                "scenario": SCENARIOS}[kind]
    scheme, sep, _ = name.partition(":")
    if kind == "dataset" and sep and f"{scheme}:" in DATASETS:  # "csv:PATH?target=COL": checked when it loads
        return name
    try:
        registry.get(name)
    except ExpungeError as exc:  # UnknownName is a KeyError: pydantic reports only ValueErrors as field errors
        raise ValueError(str(exc)) from None
    return name


class Recipe(_Strict):
    """Overrides of the dataset's default :class:`~expunge.train.loop.TrainRecipe` (Original and oracles)."""

    epochs: int | None = Field(None, ge=1)
    batch_size: int | None = Field(None, ge=1)
    optimizer: OptimizerName | None = None
    lr: float | None = Field(None, gt=0)
    momentum: float | None = Field(None, ge=0)
    weight_decay: float | None = Field(None, ge=0)
    schedule: ScheduleName | None = None

    def overrides(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class Request(_Strict):
    """One request: a forget spec, or a scenario with parameters (checked by the scenario's Params at expansion)."""

    forget: str | None = None
    scenario: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    name: str | None = None  # how tables name it (e.g. "full-class"); default: the spec or scenario with params

    @model_validator(mode="after")
    def _one_kind(self) -> Request:
        if (self.forget is None) == (self.scenario is None):
            raise ValueError("give exactly one of 'forget' (a spec such as class:3 or random:0.1) or 'scenario' "
                             "(a name from `expunge scenarios`)")
        if self.forget is not None and self.params:
            raise ValueError("'params' belong to a scenario request; a forget spec carries its own argument")
        return self

    @field_validator("forget")
    @classmethod
    def _spec(cls, value: str | None) -> str | None:
        if value is not None:
            from expunge.data.request import ForgetRequest

            try:
                return ForgetRequest.parse(value).spec
            except ExpungeError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("scenario")
    @classmethod
    def _scenario(cls, value: str | None) -> str | None:
        return None if value is None else _registered("scenario", value)

    @property
    def label(self) -> str:
        """How tables name the request: its ``name``, else the spec, or the scenario with its parameters."""
        if self.name is not None:
            return self.name
        if self.forget is not None:
            return self.forget
        args = " ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.scenario} {args}".strip()


class Method(_Strict):
    """A method with its hyperparameters: ``preset`` (DATASET/MODEL/SCENARIO) or ``paper_defaults``, then
    ``params`` overrides — as ``expunge unlearn --preset/--paper-defaults/--param``. ``requests`` (labels of the
    config's requests) restricts the method to those: a tuned row (``label: "ssd [tuned]"``, the shipped preset of
    each request) beside the paper-default row of the same method, only where a preset was tuned."""

    name: str
    label: str | None = None
    preset: str | None = None
    paper_defaults: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    requests: list[str] | None = Field(None, min_length=1)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _registered("method", value)

    @model_validator(mode="after")
    def _source(self) -> Method:
        if self.preset is not None and self.paper_defaults:
            raise ValueError("give 'preset' or 'paper_defaults: true', not both")
        return self

    @property
    def display(self) -> str:
        return self.label or self.name


class Tier2Options(_Strict):
    """Sizes of the tier-2 pipelines (:class:`expunge.metrics._tier2.Tier2Config`, the CLI's ``expunge evaluate
    --shadows K --models N``): given for forget requests only (a scenario prepares its own requests)."""

    shadows: int | None = Field(None, ge=2)   # U-LiRA K shadows (even: each example is IN for exactly K/2)
    models: int | None = Field(None, ge=2)    # KLoM / ε-score N seeded models

    @field_validator("shadows")
    @classmethod
    def _even(cls, value: int | None) -> int | None:
        if value is not None and value % 2:
            raise ValueError(f"the number of shadows must be even (each example is IN for exactly K/2), got {value}")
        return value

    def extras(self) -> dict[str, Any]:
        """The evaluation context's ``extras`` (``{"tier2": {...}}``), {} when nothing is set."""
        values = self.model_dump(exclude_none=True)
        return {"tier2": values} if values else {}


class BenchConfig(_Strict):
    """A whole grid. Lists must be non-empty and hold no duplicates; method labels must be unique on each request
    (entries of one label with disjoint ``requests`` are one table row with per-request hyperparameters)."""

    name: str | None = None
    datasets: list[str] = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    recipe: Recipe = Field(default_factory=Recipe)
    requests: list[Request] = Field(min_length=1)
    methods: list[Method] = Field(min_length=1)
    tier: int = Field(0, ge=0, le=2)
    metrics: list[str] | None = Field(None, min_length=1)
    tier2: Tier2Options = Field(default_factory=Tier2Options)
    seeds: list[int] = Field(min_length=1)

    @field_validator("methods", mode="before")
    @classmethod
    def _names_as_methods(cls, value: Any) -> Any:
        return [{"name": v} if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    @field_validator("datasets")
    @classmethod
    def _datasets(cls, value: list[str]) -> list[str]:
        return _unique("datasets", [_registered("dataset", v) for v in value])

    @field_validator("models")
    @classmethod
    def _models(cls, value: list[str]) -> list[str]:
        return _unique("models", [_registered("model", v) for v in value])

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _unique("metrics", [_registered("metric", v) for v in value])

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        bad = [s for s in value if not 0 <= s < SEED_LIMIT]
        if bad:
            raise ValueError(f"seeds {bad} are out of range: seeds are integers from 0 to {SEED_LIMIT - 1}")
        return _unique("seeds", value)

    @model_validator(mode="after")
    def _distinct(self) -> BenchConfig:
        labels = _unique("requests", [r.label for r in self.requests])
        for req in labels:  # a label names one row per request: one label may carry other params elsewhere
            _unique("method labels", [m.display for m in self.methods if m.requests is None or req in m.requests],
                    fix="give the same method twice different 'label's, or disjoint 'requests'")
        for i, m in enumerate(self.methods):
            for name in m.requests or ():
                if name not in labels:
                    close = difflib.get_close_matches(name, labels, n=1)
                    hint = f" Did you mean {close[0]!r}?" if close else ""
                    raise ValueError(f"methods[{i}] ({m.display}).requests: no request is labelled {name!r}.{hint} "
                                     f"Request labels: {', '.join(labels)}")
        if self.tier2.extras() and any(r.scenario is not None for r in self.requests):
            raise ValueError("tier2 options apply to forget requests; a scenario request prepares its own "
                             "evaluation. Fix: drop 'tier2' or give the requests as forget specs")
        return self

    @property
    def title(self) -> str:
        return self.name or "bench"


def _unique(what: str, values: list[Any], fix: str = "list each once") -> list[Any]:
    dups = sorted({str(v) for v in values if values.count(v) > 1})
    if dups:
        raise ValueError(f"duplicate {what}: {', '.join(dups)}. Fix: {fix}")
    return values


def _where(loc: tuple[Any, ...]) -> str:
    """``("methods", 1, "params")`` as ``methods[1].params`` (pydantic's own union branch names dropped)."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif isinstance(part, str) and not part.startswith(("function-", "list[", "dict[")):
            out += f".{part}" if out else part
    return out or "top level"


def _message(err: Any) -> str:
    msg = str(err["msg"]).removeprefix("Value error, ")
    value = err.get("input")
    if isinstance(value, str | int | float | bool) and not err["type"].startswith("value_error"):
        msg = f"{msg}; got {value!r}"  # pydantic's range and choice messages omit the offending value
    return f"{_where(err['loc'])}: {msg}"


def parse_config(doc: Any, source: str = "config") -> BenchConfig:
    """Validate a parsed YAML document as a :class:`BenchConfig`; :class:`BenchConfigError` on any fault."""
    if not isinstance(doc, dict):
        raise BenchConfigError(f"{source}: a grid config is a YAML mapping with keys "
                               f"{', '.join(BenchConfig.model_fields)}; got {type(doc).__name__}")
    try:
        return BenchConfig.model_validate(doc)
    except ValidationError as exc:
        raise BenchConfigError(f"{source}: " + "; ".join(_message(e) for e in exc.errors())) from None


def load_config(path: str | Path) -> BenchConfig:
    """Read and validate a YAML grid config (``yaml.safe_load``: no tags that build objects)."""
    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchConfigError(f"cannot read the grid config {path}: {exc}. Fix: pass a YAML file") from None
    except yaml.YAMLError as exc:
        raise BenchConfigError(f"{path} is not valid YAML: {' '.join(str(exc).split())}") from None
    return parse_config(doc, str(path))

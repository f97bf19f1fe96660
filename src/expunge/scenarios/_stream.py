"""The continual scenario's stream: parsing, the fixed memory buffer and the method-independent plan of every step
(which examples each step learns, forgets and keeps, and what the buffer holds). See
:mod:`expunge.scenarios.continual`."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from expunge.data.datasets import Dataset
from expunge.errors import InvalidForgetRequest


@dataclass(frozen=True)
class Event:
    kind: str  # "learn" | "forget_class" | "forget_samples"
    classes: tuple[int, ...] = ()
    cls: int = -1
    fraction: float = 0.0

    @property
    def text(self) -> str:
        if self.kind == "learn":
            return "learn:" + ",".join(map(str, self.classes))
        if self.kind == "forget_class":
            return f"forget:class:{self.cls}"
        return f"forget:samples:{self.fraction:g}"


def parse_stream(text: str) -> list[Event]:
    """Events of ``learn:A,B; forget:class:C; forget:samples:F`` (checked against a dataset by :func:`plan_stream`).

    Raises:
        InvalidForgetRequest: a step that does not parse, no learning step first, or no forget step."""
    events: list[Event] = []
    for raw in (s.strip() for s in text.split(";")):
        if not raw:
            continue
        parts = [p.strip() for p in raw.split(":")]
        try:
            if parts[0] == "learn" and len(parts) == 2:
                classes = tuple(int(c) for c in parts[1].split(","))
                if len(set(classes)) != len(classes) or not classes:
                    raise ValueError
                events.append(Event("learn", classes=classes))
            elif parts[:2] == ["forget", "class"] and len(parts) == 3:
                events.append(Event("forget_class", cls=int(parts[2])))
            elif parts[:2] == ["forget", "samples"] and len(parts) == 3:
                f = float(parts[2])
                if not 0.0 < f < 1.0:
                    raise ValueError
                events.append(Event("forget_samples", fraction=f))
            else:
                raise ValueError
        except ValueError:
            raise InvalidForgetRequest(f"cannot read stream step {raw!r}: write learn:A,B (distinct classes), "
                                       "forget:class:C or forget:samples:F (0 < F < 1), separated by ';'") from None
    if not events or events[0].kind != "learn":
        raise InvalidForgetRequest(f"stream {text!r} must start with a learn:A,B step")
    if not any(ev.kind != "learn" for ev in events):
        raise InvalidForgetRequest(f"stream {text!r} has no forget step: add forget:class:C or forget:samples:F")
    return events


class Buffer:
    """A fixed-size, class-balanced memory of training positions. Each class's candidates are in a seeded order; a
    class keeps a prefix of it, so rebalancing only drops the last slots."""

    def __init__(self, size: int, labels: np.ndarray, seed: int) -> None:
        self.size, self.labels, self.seed = size, labels, seed
        self.slots: dict[int, list[int]] = {}

    def add(self, classes: tuple[int, ...], allowed: np.ndarray) -> None:
        """Add new classes (from ``allowed`` positions) and rebalance: ⌊size / #classes⌋ slots per class."""
        quota = self.size // (len(self.slots) + len(classes))
        for c in list(self.slots):
            self.slots[c] = self.slots[c][:quota]
        for c in classes:
            pos = allowed[self.labels[allowed] == c]
            order = np.random.default_rng(np.random.SeedSequence([self.seed, 0xB0F, c])).permutation(pos)
            self.slots[c] = [int(p) for p in order[:quota]]

    def remove(self, positions: np.ndarray, cls: int | None = None) -> None:
        gone = {int(p) for p in positions}
        if cls is not None:
            self.slots.pop(cls, None)
        for c in self.slots:
            self.slots[c] = [p for p in self.slots[c] if p not in gone]

    def positions(self) -> np.ndarray:
        return np.sort(np.array([p for s in self.slots.values() for p in s], dtype=np.int64))


@dataclass
class StreamPlan:
    """Per event index i: ``new_positions`` (learn), ``targets`` (forget), the buffer before it, the classes kept
    before it, and after it the forgotten / allowed positions and the kept / removed classes."""

    events: list[Event]
    new_positions: dict[int, np.ndarray] = field(default_factory=dict)
    targets: dict[int, np.ndarray] = field(default_factory=dict)
    buffer_before: list[np.ndarray] = field(default_factory=list)
    buffer_after: list[np.ndarray] = field(default_factory=list)
    kept_before: list[tuple[int, ...]] = field(default_factory=list)
    kept_after: list[tuple[int, ...]] = field(default_factory=list)
    removed_after: list[tuple[int, ...]] = field(default_factory=list)
    tasks_before: list[tuple[tuple[int, ...], ...]] = field(default_factory=list)
    forgotten_after: list[np.ndarray] = field(default_factory=list)
    allowed_after: list[np.ndarray] = field(default_factory=list)

    @property
    def forget_events(self) -> list[int]:
        return [i for i, ev in enumerate(self.events) if ev.kind != "learn"]


def plan_stream(dataset: Dataset, events: list[Event], *, buffer: int, seed: int, buffer_seed: int) -> StreamPlan:
    """The plan of ``events`` on ``dataset``: sample draws use ``seed``, the buffer's order ``buffer_seed``.

    Raises:
        InvalidForgetRequest: a class that does not exist, is learned twice, or is forgotten before it is learned
            or after it was removed; a sample share that selects nothing."""
    labels = dataset.train.y.numpy()
    n_classes = dataset.num_classes
    buf = Buffer(buffer, labels, buffer_seed)
    plan = StreamPlan(events)
    learned: list[int] = []
    removed: list[int] = []
    tasks: list[tuple[int, ...]] = []
    forgotten = np.empty(0, dtype=np.int64)
    for i, ev in enumerate(events):
        kept = tuple(c for c in learned if c not in removed)
        plan.buffer_before.append(buf.positions())
        plan.kept_before.append(kept)
        if ev.kind == "learn":
            bad = [c for c in ev.classes if not 0 <= c < n_classes]
            if bad:
                raise InvalidForgetRequest(f"stream step {ev.text}: class(es) {bad} do not exist in {dataset.name} "
                                           f"(classes 0..{n_classes - 1})")
            again = [c for c in ev.classes if c in learned]
            if again:
                raise InvalidForgetRequest(f"stream step {ev.text}: class(es) {again} were learned before; each "
                                           "class is learned once")
            new = np.flatnonzero(np.isin(labels, ev.classes))
            plan.new_positions[i] = new
            buf.add(ev.classes, new)
            learned += list(ev.classes)
            tasks.append(ev.classes)
        else:
            allowed = np.setdiff1d(np.flatnonzero(np.isin(labels, kept)), forgotten)
            if ev.kind == "forget_class":
                if ev.cls not in kept:
                    raise InvalidForgetRequest(f"stream step {ev.text} (step {i + 1}): class {ev.cls} is not learned "
                                               f"and kept at that point (kept: {list(kept)})")
                targets = allowed[labels[allowed] == ev.cls]
                removed.append(ev.cls)
            else:
                n = round(ev.fraction * allowed.size)
                if n < 1 or n >= allowed.size:
                    raise InvalidForgetRequest(f"stream step {ev.text} (step {i + 1}) selects {n} of the "
                                               f"{allowed.size} examples learned and kept: use another share")
                rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC0E, i]))
                targets = np.sort(rng.choice(allowed, size=n, replace=False))
            plan.targets[i] = targets
            forgotten = np.union1d(forgotten, targets)
            buf.remove(targets, ev.cls if ev.kind == "forget_class" else None)
        kept_now = tuple(c for c in learned if c not in removed)
        plan.buffer_after.append(buf.positions())
        plan.kept_after.append(kept_now)
        plan.removed_after.append(tuple(removed))
        plan.tasks_before.append(tuple(tasks))
        plan.forgotten_after.append(forgotten.copy())
        plan.allowed_after.append(np.setdiff1d(np.flatnonzero(np.isin(labels, kept_now)), forgotten))
    return plan


def validation_events(events: list[Event], *, seed: int) -> list[Event]:
    """The tuning stream: same learning steps; each forgotten class replaced by another learned, kept class that the
    stream never forgets (the other class of its task when possible, else a seeded draw); sample steps unchanged
    (their draw differs through the seed).

    Raises:
        InvalidForgetRequest: no such class is left at a forget step."""
    targets = {ev.cls for ev in events if ev.kind == "forget_class"}
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xC1A]))
    out: list[Event] = []
    learned: list[tuple[int, ...]] = []
    used: set[int] = set()
    for ev in events:
        if ev.kind == "learn":
            learned.append(ev.classes)
        if ev.kind != "forget_class":
            out.append(ev)
            continue
        task = next(t for t in learned if ev.cls in t) if any(ev.cls in t for t in learned) else ()
        pool = [c for t in learned for c in t if c not in targets and c not in used]
        same = [c for c in task if c in pool]
        if not pool:
            raise InvalidForgetRequest(f"the validation stream has no other learned class to forget at {ev.text}")
        choice = same[0] if same else int(rng.choice(pool))
        used.add(choice)
        out.append(Event("forget_class", cls=choice))
    return out

"""Request affinity: hand groups of items to worker slots so that a group's items run in one process.

A grid's cells that share a request (same Original and oracle) form a :class:`Group`. Its first cell loads — or
trains — the request's Original, oracle and baseline metrics; a worker process keeps them for the next cell of the
same request (:data:`expunge.harness.run._PREPARED`), about as long as a digits cell itself. Spreading a request's
cells over the workers makes every worker load it: with 2 workers a grid's cells then took 2.5 times as long in
total (benchmarks/results/ray_scaling.md before this module). So :func:`dispatch`:

1. gives a free slot the next item of the group it is working on;
2. else the next unstarted group — unless its ``gate`` is held: a group whose first item would train a shared
   artifact (an Original several requests need) waits until the group that started on that gate has trained it,
   so two workers never train the same artifact at once. The gate opens when that group's ``head`` finishes (an
   item that trains only the shared artifact), else when its first item does: with a head, the waiting requests
   start as soon as the Original is stored and train their own oracles beside the first request's, instead of
   waiting for its oracle and first method too (on Fashion-MNIST that serialised a setting's oracles, ~13 min);
3. else, when no group is left to start, it steals the back half of the largest group whose first item has finished
   (its artifacts are in the store: the thief loads, never trains), so the grid's tail is balanced (work stealing as
   in Blumofe & Leiserson, "Scheduling multithreaded computations by work stealing", JACM 1999, at group grain).

One item per slot is in flight: a result is yielded as soon as its item finishes, so the caller stores each cell
as it completes. When a slot's process dies (:class:`~expunge.harness.executors.WorkerLost`) no new item is
started; the items in flight elsewhere finish and are yielded, then every item not run is yielded with that error.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from expunge.harness.executors import Executor, Slot, WorkerLost

T = TypeVar("T")
R = TypeVar("R")


@dataclass(eq=False)
class Group(Generic[T]):
    """Items to run in one worker process, in order. ``gate``: the key of a shared artifact the first item trains,
    or None when nothing it needs is shared with another group or is not trained yet. ``head``: an item run before
    ``items`` that trains just that artifact and opens the gate when it finishes (yielded like the others)."""

    items: list[T]
    gate: str | None = None
    head: T | None = None
    queue: deque[T] = field(init=False, repr=False)
    first_out: bool = field(default=False, init=False)   # its first item has been started
    first_done: bool = field(default=False, init=False)  # its artifacts are in the store: others may steal

    def __post_init__(self) -> None:
        self.queue = deque(self.items)


def dispatch(slots: Sequence[Slot], groups: Iterable[Group[T]], fn: Callable[[T], R], *,
             steal: bool = True) -> Iterator[tuple[T, R | BaseException]]:
    """Run ``fn`` on every item of ``groups`` on ``slots`` by the rules of this module's docstring; yield ``(item,
    result or exception)`` as each finishes. ``steal=False``: no stealing (a group's items all run in one slot)."""
    unstarted: list[Group[T]] = [g for g in groups if g.items]
    working: list[Group[T] | None] = [None] * len(slots)   # the group each slot takes its next item from
    gates: dict[str, bool] = {}                           # gate -> opened (its first group's first item finished)
    running: dict[Future[R], tuple[int, T, Group[T], str]] = {}  # role: "head", "first" or ""
    lost: BaseException | None = None

    def pop(group: Group[T]) -> tuple[T, Group[T], str]:
        first = not group.first_out and not group.first_done
        group.first_out = True
        return group.queue.popleft(), group, "first" if first else ""

    def next_item(i: int) -> tuple[T, Group[T], str] | None:
        group = working[i]
        if group is not None and group.queue:
            return pop(group)
        for j, cand in enumerate(unstarted):
            if cand.gate is None or gates.get(cand.gate, True):  # no gate, or not claimed yet, or opened
                del unstarted[j]
                if cand.gate is not None:
                    gates.setdefault(cand.gate, False)
                working[i] = cand
                if cand.head is not None:
                    return cand.head, cand, "head"
                return pop(cand)
        if not steal:
            return None
        victims = [g for g in working if g is not None and g.first_done and len(g.queue) >= 2]
        if not victims:
            return None
        victim = max(victims, key=lambda g: len(g.queue))
        taken = [victim.queue.pop() for _ in range(len(victim.queue) // 2)][::-1]
        stolen = Group(taken)
        stolen.first_done = True
        working[i] = stolen
        return pop(stolen)

    while True:
        if lost is None:
            for i, slot in enumerate(slots):
                if any(s == i for s, *_ in running.values()):
                    continue
                nxt = next_item(i)
                if nxt is None:
                    continue
                item, group, role = nxt
                running[slot.submit(fn, item)] = (i, item, group, role)
        if not running:
            break
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for fut in done:
            i, item, group, role = running.pop(fut)
            exc = fut.exception()
            if isinstance(exc, WorkerLost) and lost is None:
                lost = exc
            if role == "first":
                group.first_done = True
            if role and group.gate is not None:  # a head that failed opens it too: the others meet its error
                gates[group.gate] = True
            yield item, (exc if exc is not None else fut.result())
    if lost is not None:  # the items no slot ran
        rest = [it for g in unstarted for it in g.queue] + [it for g in working if g is not None for it in g.queue]
        for item in rest:
            yield item, lost


def map_unordered(executor: Executor, fn: Callable[[T], R],
                  items: Iterable[T]) -> Iterator[tuple[T, R | BaseException]]:
    """``fn`` over ``items`` on ``executor``'s slots, each item on whichever slot is free; ``(item, result or
    exception)`` in completion order."""
    return dispatch(executor.slots(), [Group([item]) for item in items], fn, steal=False)


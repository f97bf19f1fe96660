"""Request affinity (expunge.harness.dispatch) on fake slots (a thread each): a group's items stay in one slot unless
stolen, a gated group waits for its gate's first item, the tail is stolen only from groups whose first item is done,
and a lost worker stops the grid without losing what finished."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from expunge.harness.dispatch import Group, dispatch
from expunge.harness.executors import WorkerLost


class Log:
    """What ran where and when: (slot, item, start, end)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str, float, float]] = []
        self.lock = threading.Lock()


class FakeSlot:
    def __init__(self, index: int, log: Log, dies_on: str | None = None) -> None:
        self.index, self.log, self.dies_on = index, log, dies_on
        self.pool = ThreadPoolExecutor(1)

    def submit(self, fn: Callable[[Any], Any], item: Any) -> Future[Any]:
        def run() -> Any:
            if item == self.dies_on:
                raise WorkerLost("killed")
            t0 = time.perf_counter()
            out = fn(item)
            with self.log.lock:
                self.log.rows.append((self.index, item, t0, time.perf_counter()))
            return out
        return self.pool.submit(run)


def sleepy(item: str) -> str:
    """Item "g3:1:0.05": group 3, item 1, runs 0.05 s."""
    time.sleep(float(item.split(":")[2]))
    return item.upper()


def groups_of(sizes: list[int], seconds: float = 0.02, gates: list[str | None] | None = None) -> list[Group[str]]:
    gates = gates or [None] * len(sizes)
    return [Group([f"g{g}:{i}:{seconds}" for i in range(n)], gates[g]) for g, n in enumerate(sizes)]


def run(slots: int, groups: list[Group[str]], **kw: Any) -> tuple[dict[str, Any], Log]:
    log = Log()
    fakes = [FakeSlot(i, log, kw.pop("dies_on", None) if i == 0 else None) for i in range(slots)]
    out = dict(dispatch(fakes, groups, sleepy, **kw))
    return out, log


def test_every_item_once_and_each_group_in_one_slot_without_stealing() -> None:
    out, log = run(2, groups_of([4, 3, 5, 2, 1]), steal=False)
    assert out == {item: item.upper() for g in groups_of([4, 3, 5, 2, 1]) for item in g.items}
    slots_of: dict[str, set[int]] = {}
    for slot, item, *_ in log.rows:
        slots_of.setdefault(item.split(":")[0], set()).add(slot)
    assert all(len(s) == 1 for s in slots_of.values()), slots_of
    assert {s for ss in slots_of.values() for s in ss} == {0, 1}  # both slots worked
    # within a group, items run in order
    for g in slots_of:
        order = [item for _, item, *_ in sorted(log.rows, key=lambda r: r[2]) if item.startswith(g + ":")]
        assert order == sorted(order, key=lambda s: int(s.split(":")[1]))


def test_the_tail_is_stolen_from_the_largest_group_only_after_its_first_item() -> None:
    """One long group and one short: the idle slot steals the back half of the long one, never its first item,
    and the stolen items are the last ones (the owner keeps the front)."""
    groups = groups_of([1, 12], seconds=0.03)
    out, log = run(2, groups)
    assert len(out) == 13
    by_item = {item: (slot, t0, t1) for slot, item, t0, t1 in log.rows}
    owner = by_item["g1:0:0.03"][0]
    stolen = sorted(int(i.split(":")[1]) for i, (s, *_) in by_item.items() if i.startswith("g1:") and s != owner)
    assert stolen, "the idle slot stole nothing"
    assert by_item["g1:1:0.03"][0] == owner  # the owner keeps the front
    first_end = by_item["g1:0:0.03"][2]
    assert all(by_item[f"g1:{i}:0.03"][1] >= first_end for i in stolen)
    assert max(t1 for *_, t1 in log.rows) - min(t0 for _, _, t0, _ in log.rows) < 0.03 * 10  # 13 items, 2 slots


def test_a_gated_group_waits_for_the_first_item_of_its_gate() -> None:
    """Two groups needing one untrained Original (the same gate): the second starts only once the first group's
    first item (which trains it) has finished; an ungated group runs meanwhile."""
    groups = groups_of([3, 3, 2], seconds=0.05, gates=["original/a", "original/a", None])
    out, log = run(2, groups, steal=False)
    assert len(out) == 8
    start = {item: t0 for _, item, t0, _ in log.rows}
    end = {item: t1 for _, item, _, t1 in log.rows}
    assert start["g1:0:0.05"] >= end["g0:0:0.05"]
    assert start["g2:0:0.05"] < end["g0:0:0.05"]  # the free slot took the ungated group instead of waiting


def test_a_head_opens_the_gate_before_its_groups_first_item_finishes() -> None:
    """The first group of a gate starts with its head (training the shared Original): the waiting group starts when
    the head finishes, beside the first group's first item (its own oracle), not after it; the head is yielded and
    a thief never takes a group's first item."""
    groups = groups_of([3, 3], seconds=0.1, gates=["original/a", "original/a"])
    groups[0].head = "h0:0:0.05"
    out, log = run(2, groups, steal=False)
    assert len(out) == 7 and out["h0:0:0.05"] == "H0:0:0.05"
    start = {item: t0 for _, item, t0, _ in log.rows}
    end = {item: t1 for _, item, _, t1 in log.rows}
    assert start["g0:0:0.1"] >= end["h0:0:0.05"] and start["g1:0:0.1"] >= end["h0:0:0.05"]
    assert start["g1:0:0.1"] < end["g0:0:0.1"]  # the second request no longer waits for the first one's cell
    assert {s for s, item, *_ in log.rows if item.startswith(("h0", "g0"))} == {0}


def test_a_lost_worker_starts_nothing_more_and_reports_the_rest_lost() -> None:
    """Slot 0 dies on its second item: the other slot's item in flight still finishes and is yielded; every item
    not run comes back as WorkerLost, once."""
    groups = groups_of([3, 3], seconds=0.05)
    out, log = run(2, groups, steal=False, dies_on="g0:1:0.05")
    assert set(out) == {i for g in groups for i in g.items}
    lost = sorted(i for i, r in out.items() if isinstance(r, WorkerLost))
    done = sorted(i for i, r in out.items() if isinstance(r, str))
    assert done == sorted(item for _, item, *_ in log.rows)
    assert "g0:1:0.05" in lost and "g0:0:0.05" in done and "g1:0:0.05" in done
    assert "g0:2:0.05" in lost


@pytest.mark.parametrize("slots", [1, 3])
def test_one_slot_runs_the_groups_in_order(slots: int) -> None:
    groups = groups_of([2, 2, 2])
    out, log = run(slots, groups)
    assert len(out) == 6
    if slots == 1:
        assert [item for _, item, *_ in log.rows] == [i for g in groups_of([2, 2, 2]) for i in g.items]


def test_request_groups_gate_an_untrained_original_and_a_setting_they_cannot_read(tmp_path: Path) -> None:
    """The cells grouped by request; two requests of one seed need one Original: on an empty store both are gated
    on its key (one gate per seed), on a store holding it neither is; a scenario whose Original cannot be read
    off its cells (sequential) gates every request of its setting on the setting."""
    from expunge.harness.config import parse_config
    from expunge.harness.grid import expand
    from expunge.harness.run import request_groups
    from expunge.store.artifacts import MANIFEST

    grid = {"datasets": ["digits"], "models": ["mlp"], "recipe": {"epochs": 1}, "seeds": [0, 1],
            "requests": [{"forget": "class:3"}, {"forget": "random:0.1"}], "methods": ["finetune", "ssd"]}
    cells = expand(parse_config(grid))
    groups = request_groups(cells, str(tmp_path), None)
    assert [len(g.items) for g in groups] == [2, 2, 2, 2]
    assert all(len({(j.cells[0].seed, j.cells[0].request_label) for j in g.items}) == 1 for g in groups)
    gates = {(g.items[0].cells[0].request_label, g.items[0].cells[0].seed): g.gate for g in groups}
    assert all(gate and gate.startswith("original/") for gate in gates.values())
    heads = [g.head for g in groups]  # the first group of each seed's gate trains its Original in a job of its own
    firsts = [g.gate not in [o.gate for o in groups[:i]] for i, g in enumerate(groups)]
    assert [h is not None for h in heads] == firsts and sum(firsts) == 2
    assert all(h.original_only and h.cells[0] == g.items[0].cells[0] for h, g in zip(heads, groups, strict=True) if h)
    assert gates["class:3", 0] == gates["random:0.1", 0] != gates["class:3", 1] == gates["random:0.1", 1]
    for seed in (0, 1):  # the Originals in the store (a manifest is what the store checks)
        key = gates["class:3", seed].split("/")[1]  # type: ignore[union-attr]
        (tmp_path / "original" / key).mkdir(parents=True)
        (tmp_path / "original" / key / MANIFEST).write_text("{}")
    assert [g.gate for g in request_groups(cells, str(tmp_path), None)] == [None] * 4
    assert [g.gate for g in request_groups(cells, str(tmp_path / "empty"), None, gated=False)] == [None] * 4

    seq = expand(parse_config({**grid, "seeds": [0], "requests": [
        {"forget": "class:3"}, {"scenario": "sequential", "params": {"k": 2, "base": "random:0.02"}}]}))
    assert {g.gate for g in request_groups(seq, str(tmp_path), None)} == {f"setting/{seq[0].setting}"}


def test_a_heads_job_trains_the_original_its_gate_names_for_requests_and_scenarios(tmp_path: Path) -> None:
    """The head of a gated group — a forget request or a one-request scenario — trains exactly the Original keyed by
    its gate (so the waiting requests find it), and finds it the second time."""
    from expunge.harness.config import parse_config
    from expunge.harness.grid import expand
    from expunge.harness.run import request_groups, run_cell

    grid = {"datasets": ["digits"], "models": ["mlp"], "recipe": {"epochs": 1}, "seeds": [0],
            "requests": [{"scenario": "full-class", "params": {"classes": "3"}}, {"forget": "random:0.1"}],
            "methods": ["finetune"]}
    groups = request_groups(expand(parse_config(grid)), str(tmp_path), None)
    assert [g.head is not None for g in groups] == [True, False] and groups[0].gate == groups[1].gate
    out = run_cell(groups[0].head)  # type: ignore[arg-type]
    assert out["error"] is None and out["trained"] == [groups[0].gate]
    assert run_cell(groups[0].head)["trained"] == []  # type: ignore[arg-type]
    assert [g.gate for g in request_groups(expand(parse_config(grid)), str(tmp_path), None)] == [None, None]

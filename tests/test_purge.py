"""Forget-derived marks on every manifest, and `expunge purge` (dry run, --yes, interrupted deletes, the CLI)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import expunge
from expunge.errors import ArtifactError, InvalidArtifactKey
from expunge.evaluation import evaluate_run
from expunge.store import ArtifactStore
from expunge.store import purge as purge_mod
from expunge.store.artifacts import MANIFEST, TRASH
from expunge.store.purge import plan_original, plan_request, plan_run, plan_unlinked, scan
from expunge.train.loop import TrainRecipe

TINY = TrainRecipe(epochs=2, batch_size=64, optimizer="adam", lr=2e-3)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    """One Original, two requests on it: random:0.05 (finetune, ssd: ssd caches train_stats) and class:3."""
    root = tmp_path_factory.mktemp("purge") / "store"
    store = ArtifactStore(root)
    prep_r = expunge.prepare("digits", "mlp", "random:0.05", store=store, recipe=TINY, progress=False)
    rec_ft, _ = expunge.unlearn(prep_r, "finetune", {"epochs": 1}, metrics=["forget_acc"])
    rec_ssd, _ = expunge.unlearn(prep_r, "ssd", metrics=["forget_acc"])
    prep_c = expunge.prepare("digits", "mlp", "class:3", store=store, recipe=TINY, progress=False)
    rec_c, _ = expunge.unlearn(prep_c, "finetune", {"epochs": 1}, metrics=["forget_acc"])
    return root, {"ft": rec_ft, "ssd": rec_ssd, "class": rec_c}


@pytest.fixture
def store(built, tmp_path: Path):
    root, recs = built
    shutil.copytree(root, tmp_path / "store")
    return ArtifactStore(tmp_path / "store"), recs


def _present(store: ArtifactStore) -> set[tuple[str, str]]:
    return {(k, key) for k, key, _ in store.artifacts()}


def test_every_manifest_says_whether_and_how_it_encodes_the_forget_set(store):
    st, recs = store
    rec = recs["ft"]
    fp, okey = rec.request["fingerprint"], rec.original_key
    marks = {(i.kind, i.key): i.lineage for i in scan(st)}
    assert all(i.recorded for i in scan(st))
    assert marks[("original", okey)] == {"trained_on_forget": True, "lists_forget_ids": False, "request": None,
                                         "parent": None}
    assert marks[("oracle", rec.oracle_key)] == {"trained_on_forget": False, "lists_forget_ids": False,
                                                 "request": fp, "parent": None}
    assert marks[("unlearned", rec.unlearned_key)] == {"trained_on_forget": True, "lists_forget_ids": True,
                                                       "request": fp, "parent": okey}
    stats = [m for (kind, _), m in marks.items() if kind == "train_stats"]
    assert stats and all(m["trained_on_forget"] and m["parent"] == okey and m["request"] is None for m in stats)
    assert set(marks) == _present(st)  # every artifact is marked


def test_dry_run_lists_the_request_s_artifacts_and_deletes_nothing(store):
    st, recs = store
    before = _present(st)
    plan = plan_run(st, recs["ft"].unlearned_key)
    assert {(i.kind, i.key) for i in plan.items} == {("unlearned", recs["ft"].unlearned_key),
                                                     ("unlearned", recs["ssd"].unlearned_key),
                                                     ("oracle", recs["ft"].oracle_key)}
    assert plan.total_bytes == sum(f.stat().st_size for i in plan.items for f in i.path.iterdir()) > 0
    assert all("request " + recs["ft"].request["fingerprint"][:12] in i.why for i in plan.items)
    assert {p["original"] for p in plan.pairs} == {recs["ft"].original_key}  # the Original stays beside a child
    assert _present(st) == before and not plan.to_json()["removed"]


def test_request_purge_removes_its_artifacts_and_keeps_the_rest(store):
    st, recs = store
    before = _present(st)
    plan = plan_request(st, recs["ft"].request["fingerprint"][:10]).execute()  # a prefix names the request
    assert _present(st) == before - {(i.kind, i.key) for i in plan.items}
    for gone in ("ft", "ssd"):
        with pytest.raises(ArtifactError):
            evaluate_run(recs[gone].unlearned_key, store=st)
    # the other request, the Original and its statistics stay and still work
    assert evaluate_run(recs["class"].unlearned_key, store=st, metrics=["forget_acc"]).metrics["forget_acc"] \
        == pytest.approx(recs["class"].metrics["forget_acc"], abs=1e-12)
    assert st.exists("original", recs["ft"].original_key)
    assert not list((st.root / TRASH).iterdir())
    assert plan_request(st, recs["ft"].request["fingerprint"]).items == []  # re-running is a no-op


def test_keep_oracle_keeps_the_request_s_oracle(store):
    st, recs = store
    plan = plan_request(st, recs["ft"].request["fingerprint"], keep_oracle=True).execute()
    assert "oracle" not in {i.kind for i in plan.items} and st.exists("oracle", recs["ft"].oracle_key)


def test_original_purge_removes_it_and_everything_derived_from_it(store):
    st, recs = store
    plan = plan_original(st, recs["ft"].original_key)
    kinds = sorted(i.kind for i in plan.items)
    assert kinds.count("unlearned") == 3 and "train_stats" in kinds and plan.items[-1].kind == "original"
    plan.execute()
    left = {k for k, _ in _present(st)}
    assert left == {"oracle"}  # oracles never saw the Original's data of the forget set: kept
    with pytest.raises(ArtifactError, match="no Original"):
        plan_original(st, recs["ft"].original_key)


def test_unmarked_manifests_are_treated_as_forget_derived(store):
    st, recs = store
    for _, _, folder in list(st.artifacts()):
        m = json.loads((folder / MANIFEST).read_text())
        m.pop("forget_derived")
        (folder / MANIFEST).write_text(json.dumps(m))
    items = {(i.kind, i.key): i for i in scan(st)}
    oracle = items[("oracle", recs["ft"].oracle_key)]
    assert not oracle.recorded and oracle.lineage["trained_on_forget"] and oracle.lineage["lists_forget_ids"]
    assert "predates" in oracle.why
    # lineage is still inferred from the manifest, so a request purge finds the same artifacts
    assert len(plan_request(st, recs["ft"].request["fingerprint"]).items) == 3


def test_a_kill_between_rename_and_delete_leaves_no_loadable_half(store, monkeypatch):
    st, recs = store
    plan = plan_run(st, recs["ft"].unlearned_key)
    first = plan.items[0]

    def killed(path, *a, **k):
        raise KeyboardInterrupt("killed after the rename (injected)")

    monkeypatch.setattr(purge_mod.shutil, "rmtree", killed)
    with pytest.raises(KeyboardInterrupt):
        plan.execute()
    monkeypatch.undo()
    assert not st.exists(first.kind, first.key) and any((st.root / TRASH).iterdir())
    with pytest.raises(ArtifactError):
        st.load_tensors(first.kind, first.key)
    assert all(st.load_tensors(i.kind, i.key) for i in plan.items[1:])  # the others untouched
    st.clean()  # what opening the store does once per process
    assert not any((st.root / TRASH).iterdir())


def test_a_failed_rename_leaves_the_artifact_whole_and_a_rerun_finishes(store, monkeypatch):
    st, recs = store
    plan = plan_run(st, recs["ft"].unlearned_key)
    real, calls = os.rename, {"n": 0}

    def flaky(src, dst):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("crash during purge (injected)")
        real(src, dst)

    monkeypatch.setattr(purge_mod.os, "rename", flaky)
    with pytest.raises(OSError, match="injected"):
        plan.execute()
    monkeypatch.undo()
    second = plan.items[1]
    assert st.load_tensors(second.kind, second.key)  # untouched and still verified on load
    plan_run_again = plan_request(st, recs["ft"].request["fingerprint"]).execute()
    assert {i.key for i in plan_run_again.items} == {i.key for i in plan.items[1:]}


def test_unlinked_lists_artifacts_no_request_or_original_names(store):
    st, recs = store
    st.save_tensors("shadow", "abc123", {}, {"note": "a shadow: trained on half of train+test"})
    st.save_tensors("shadow_unlearned", "def456", {}, {"original": "abc123"})
    plan = plan_unlinked(st)
    assert {(i.kind, i.key) for i in plan.items} == {("shadow", "abc123"), ("shadow_unlearned", "def456")}
    assert plan_request(st, recs["ft"].request["fingerprint"]).unlinked == 1


def test_bad_selectors_are_typed_errors(store):
    st, _ = store
    with pytest.raises(InvalidArtifactKey, match="exactly one"):
        purge_mod.plans_from({"request": None, "run": None}, st)
    with pytest.raises(InvalidArtifactKey, match="exactly one"):
        purge_mod.plans_from({"request": "ab" * 8, "original": "cd" * 16}, st)
    for bad in ("../x", "zz" * 10, "abc"):
        with pytest.raises(InvalidArtifactKey):
            plan_request(st, bad)
    with pytest.raises(InvalidArtifactKey):
        purge_mod.plans_from({"run": "../unlearned/x"}, st)
    with pytest.raises(ArtifactError, match="no unlearned run"):
        plan_run(st, "0" * 32)


def test_an_unlearning_run_warns_that_its_original_stays(store, caplog):
    st, recs = store
    info = recs["ft"].extra["original_in_store"]
    assert info["original_key"] == recs["ft"].original_key and info["purge"].startswith("expunge purge --original")
    assert "original_in_store" in recs["ft"].to_json()  # in the --json record too
    with caplog.at_level("WARNING", logger="expunge.store"):
        assert purge_mod.original_in_store(st, recs["ft"].original_key)
    assert "still in the store" in caplog.text and f"expunge purge --original {recs['ft'].original_key}" in caplog.text
    plan_original(st, recs["ft"].original_key).execute()
    assert purge_mod.original_in_store(st, recs["ft"].original_key) == {}  # retired: nothing to warn about


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.run([sys.executable, "-m", "expunge.cli.main", "purge", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def test_cli_purge_dry_run_json_then_yes(store):
    st, recs = store
    before = _present(st)
    dry = _cli("--run", recs["class"].unlearned_key, "--store", str(st.root), "--json")
    assert dry.returncode == 0, dry.stderr
    doc = json.loads(dry.stdout)
    assert doc["dry_run"] and len(doc["artifacts"]) == 2 and doc["total_bytes"] > 0 and _present(st) == before
    assert doc["pairs"][0]["original"] == recs["class"].original_key
    text = _cli("--run", recs["class"].unlearned_key, "--store", str(st.root))
    assert "would remove 2 artifact(s)" in text.stdout and "--yes deletes" in text.stdout
    assert "stays beside" in text.stderr
    done = _cli("--run", recs["class"].unlearned_key, "--store", str(st.root), "--yes")
    assert done.returncode == 0 and "removed 2 artifact(s)" in done.stdout
    assert len(_present(st)) == len(before) - 2
    bad = _cli("--run", "../x", "--store", str(st.root))
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and len(bad.stderr.splitlines()) == 1

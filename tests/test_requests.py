"""Forget requests and splits: the ids kind, the request-kind registry, and every bad request raises its typed error and
writes nothing. (Each scenario's own request kind is tested beside its scenario, in tests/scenarios/.)"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest

from expunge.api import prepare
from expunge.data.datasets import from_arrays
from expunge.data.request import ForgetRequest, Splits
from expunge.errors import (
    DuplicateIds,
    EmptyForgetSet,
    FingerprintMismatch,
    ForgetIsWholeTrainingSet,
    InvalidForgetRequest,
    MalformedForgetSpec,
    SplitOverlap,
    UnknownIds,
)
from expunge.store import ArtifactStore
from expunge.train.oracle import check_fingerprint


def test_request_kinds_are_plug_ins_and_round_trip_their_spec(digits):
    from expunge.data.request import REQUEST_KINDS, request_syntax

    assert {"class", "classes", "subclass", "random", "owners", "ids"} <= set(REQUEST_KINDS.names())
    for spec in ("class:3", "classes:3,5", "random:0.1", "owners:5"):
        req = ForgetRequest.parse(spec)
        again = ForgetRequest.parse(req.spec)
        assert req.spec == spec and again == req and hash(again) == hash(req)
    assert "random:0.1" in request_syntax() and "ids:FILE" in request_syntax()
    with pytest.raises(AttributeError):
        ForgetRequest("random", fraction=0.1).fraction = 0.2  # immutable
    with pytest.raises(AttributeError, match="no argument 'n_owners'"):
        _ = ForgetRequest("random", fraction=0.1).n_owners
    req = ForgetRequest("class", classes=("3", "5"))
    assert copy.deepcopy(req) == req and copy.deepcopy(req).classes == ("3", "5")


def test_ids_file(tmp_path: Path, digits):
    ids = digits.train.ids[:5]
    f = tmp_path / "ids.txt"
    f.write_text("# forget these\n" + "\n".join(map(str, ids)) + "\n")
    s = ForgetRequest.parse(f"ids:{f}").resolve(digits)
    assert np.array_equal(np.sort(digits.train.ids[s.forget]), np.sort(ids))


@pytest.mark.parametrize("spec", ["class", "class:", "random:1.5", "random:x", "owners:0", "bogus:3", "ids:/nope"])
def test_malformed_specs(spec):
    with pytest.raises(MalformedForgetSpec):
        ForgetRequest.parse(spec)


def test_unknown_class_name(digits):
    with pytest.raises(InvalidForgetRequest, match="class 12 does not exist"):
        ForgetRequest.parse("class:12").resolve(digits)


def test_empty_forget_set(digits):
    with pytest.raises(EmptyForgetSet):
        Splits.from_ids(digits, np.array([], dtype=np.int64))


def test_forget_whole_training_set(digits):
    with pytest.raises(ForgetIsWholeTrainingSet):
        Splits.from_ids(digits, digits.train.ids)
    with pytest.raises(ForgetIsWholeTrainingSet):
        ForgetRequest.parse("owners:100000").resolve(digits)


def test_unknown_ids_are_named(digits):
    test_id = int(digits.test.ids[0])
    with pytest.raises(UnknownIds) as err:
        Splits.from_ids(digits, np.array([int(digits.train.ids[0]), 99999, test_id]))
    assert err.value.ids == sorted([99999, test_id])
    assert "99999" in str(err.value) and "test ids" in str(err.value)


def test_duplicate_ids_are_named(digits):
    i = int(digits.train.ids[3])
    with pytest.raises(DuplicateIds) as err:
        Splits.from_ids(digits, np.array([i, i, int(digits.train.ids[4])]))
    assert err.value.ids == [i]


def test_forget_retain_overlap(digits):
    f = digits.train.ids[:3]
    with pytest.raises(SplitOverlap, match="forget and retain") as err:
        Splits.from_ids(digits, f, retain_ids=digits.train.ids[2:10])
    assert err.value.ids == [int(digits.train.ids[2])]


def test_test_overlapping_train():
    x = np.zeros((6, 1, 2, 2), np.float32)
    ds = from_arrays("tiny", x_train=x, y_train=[0, 1, 0, 1, 0, 1], x_test=x[:2], y_test=[0, 1],
                     class_names=("a", "b"), train_ids=np.arange(6), test_ids=np.array([5, 6]))
    with pytest.raises(SplitOverlap, match="test and train") as err:
        Splits.from_ids(ds, np.array([0]))
    assert err.value.ids == [5]


def test_fingerprint_mismatch(digits):
    with pytest.raises(FingerprintMismatch, match="fingerprint"):
        check_fingerprint({"dataset": {"fingerprint": "0" * 64}}, digits)
    check_fingerprint({"dataset": {"fingerprint": digits.fingerprint}}, digits)


@pytest.mark.parametrize("spec", ["class:12", "random:0.0000001", "owners:100000"])
def test_bad_request_writes_nothing(tmp_path: Path, spec):
    root = tmp_path / "store"
    with pytest.raises(InvalidForgetRequest):
        prepare("digits", "mlp", spec, store=ArtifactStore(root), progress=False)
    assert not root.exists() or not any(root.rglob("*"))


# --- bad ids files (issue 23): each a typed error naming the offending ids/lines and the fix, before any training ---
@pytest.mark.parametrize(("content", "error", "named"), [
    (b"5\n99999999999999999999\n", MalformedForgetSpec, "99999999999999999999"),  # overflows int64 (was OverflowError)
    (bytes(range(256)), MalformedForgetSpec, "not a text file"),                  # binary (was UnicodeDecodeError)
    ("5\n7\n".encode("utf-16"), MalformedForgetSpec, "not a text file"),          # UTF-16: NULs, not ids
    (b"5\nabc\n2.5\n", MalformedForgetSpec, "line 2: 'abc'"),
    (b"", EmptyForgetSet, "lists no id"),
    (b"# nothing\n\n", EmptyForgetSet, "lists no id"),
])
def test_bad_ids_file_is_a_typed_error(tmp_path: Path, content: bytes, error: type, named: str):
    f = tmp_path / "ids.txt"
    f.write_bytes(content)
    with pytest.raises(error, match="Fix:") as err:
        ForgetRequest.parse(f"ids:{f}")
    assert named in str(err.value) and str(f) in str(err.value)


@pytest.mark.parametrize(("ids", "error", "named"), [
    ([5, -3, -4], UnknownIds, "2 of the requested ids are negative"),
    ([5, 100000], UnknownIds, "ids span 0..1796"),
    ([5, 5, 7, 7], DuplicateIds, "[5, 7]"),
])
def test_bad_ids_in_a_file_are_named_at_resolve(tmp_path: Path, digits, ids, error, named):
    f = tmp_path / "ids.txt"
    f.write_text("\n".join(map(str, ids)) + "\n")
    with pytest.raises(error, match="Fix:") as err:
        ForgetRequest.parse(f"ids:{f}").resolve(digits)
    assert named in str(err.value)


@pytest.mark.parametrize("ids", [[2**70], [1.5], [float("nan")], ["3"]])
def test_bad_ids_given_in_code(digits, ids):
    from expunge.api import as_request

    with pytest.raises(MalformedForgetSpec, match="Fix:"):
        as_request(ids)  # 1.5 was silently truncated to the id 1
    with pytest.raises(MalformedForgetSpec):
        Splits.from_ids(digits, np.array(ids, dtype=object))
    assert as_request([3.0, 4]).ids == (3, 4)


def test_bad_ids_file_on_the_cli_is_one_line_and_writes_nothing(tmp_path: Path):
    import subprocess
    import sys

    f = tmp_path / "ids.txt"
    f.write_text("99999999999999999999\n")
    env = {**__import__("os").environ, "EXPUNGE_CACHE": str(tmp_path / "cache")}
    out = subprocess.run([sys.executable, "-m", "expunge.cli.main", "unlearn", "--data", "digits", "--model", "mlp",
                          "--forget", f"ids:{f}", "--method", "finetune"], capture_output=True, text=True, env=env)
    assert out.returncode == 2, out.stderr
    assert out.stderr.startswith("error: ") and out.stderr.count("\n") == 1 and "99999999999999999999" in out.stderr
    assert not (tmp_path / "cache").exists()


# --- an ids request that covers whole classes is class forgetting (issue 23) ---
def test_ids_covering_whole_classes_resolve_to_the_class_request(digits):
    from expunge.scenarios.base import scenario_for_request

    for spec in ("class:3", "classes:3,5"):
        by_class = ForgetRequest.parse(spec).resolve(digits)
        ids = digits.train.ids[by_class.forget][::-1]  # any order
        by_ids = ForgetRequest("ids", ids=tuple(int(i) for i in ids)).resolve(digits)
        assert by_ids.request == by_class.request and by_ids.describe() == by_class.describe()  # old: kind "ids"
        assert by_ids.forget_classes == by_class.forget_classes and scenario_for_request(by_ids.request).name == \
            "full-class"
    one_short = ForgetRequest.parse("class:3").resolve(digits).forget_ids[1:]
    partial = ForgetRequest("ids", ids=tuple(int(i) for i in one_short)).resolve(digits)
    assert partial.request.kind == "ids" and partial.forget_classes == ()
    assert scenario_for_request(partial.request).name == "random"


def test_ids_equal_to_a_class_share_its_record_and_key_and_one_short_does_not(session_store, prepared_class3,
                                                                              fast_recipe):
    from expunge.api import prepare, unlearn

    params = {"epochs": 1}
    rec_class, _ = unlearn(prepared_class3, "finetune", params)
    ids = prepared_class3.splits.forget_ids
    prep_ids = prepare("digits", "mlp", ids, seed=0, store=session_store, recipe=fast_recipe, progress=False)
    rec_ids, _ = unlearn(prep_ids, "finetune", params)
    assert rec_ids.forget == rec_class.forget == "class:3" and rec_ids.request == rec_class.request
    assert rec_ids.unlearned_key == rec_class.unlearned_key and rec_ids.params_source == rec_class.params_source
    prep_short = prepare("digits", "mlp", ids[1:], seed=0, store=session_store, recipe=fast_recipe, progress=False)
    rec_short, _ = unlearn(prep_short, "finetune", params)
    assert rec_short.request["kind"] == "ids" and rec_short.unlearned_key != rec_class.unlearned_key
    assert prep_short.oracle.key != prepared_class3.oracle.key


def test_cli_takes_presets_from_the_resolved_request(tmp_path: Path, digits, monkeypatch):
    """`--forget ids:FILE` naming all of class 3 is tuned as class:3 (full-class presets), not as a random sample."""
    from expunge import api
    from expunge.cli.main import unlearn as unlearn_cmd

    seen: dict = {}

    def stop(method, **kw):
        seen.update(kw)
        raise RuntimeError("stop before training")

    monkeypatch.setattr(api, "resolve_params", stop)
    f = tmp_path / "ids.txt"
    f.write_text("\n".join(map(str, ForgetRequest.parse("class:3").resolve(digits).forget_ids)) + "\n")
    with pytest.raises(RuntimeError, match="stop"):
        unlearn_cmd(data="digits", model="mlp", forget=f"ids:{f}", method="finetune", param=None, preset=None,
                    paper_defaults=False, task=None, seed=0, store=None, data_dir=None, as_json=False)
    assert seen["forget"] == ForgetRequest.parse("class:3")  # old: the ids request, so presets from "random"

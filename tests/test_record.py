"""The run record: typed, versioned, JSON round-trip, scenario fields in `extra`, clear errors on unknown schemas."""

from __future__ import annotations

import json

import pytest

from expunge.record import SCHEMA_VERSION, RecordSchemaError, RunRecord


def test_json_round_trip_keeps_every_field_and_flattens_extra(make_record):
    rec = make_record(time_s=2.0, retrain_time_s=10.0, label="ssd [tuned]").with_extra(scenario="sequential", step=2)
    doc = rec.to_json()
    assert doc["scenario"] == "sequential" and doc["step"] == 2 and "extra" not in doc  # flat, as before
    assert doc["schema_version"] == SCHEMA_VERSION and doc["speed_up"] == 5.0
    back = RunRecord.loads(json.dumps(doc))
    assert back == rec and back.extra == {"scenario": "sequential", "step": 2}
    assert rec.speed_up == pytest.approx(5.0)


def test_label_defaults_to_the_method_and_never_replaces_it(make_record):
    assert make_record(method="ssd").label == "ssd"
    tuned = make_record(method="ssd", label="ssd [tuned]")
    assert tuned.method == "ssd" and tuned.to_json()["method"] == "ssd"


def test_records_written_before_schema_versions_load_as_version_1(make_record):
    doc = make_record().to_json()
    for key in ("schema_version", "task", "label", "params_source", "speed_up"):
        doc.pop(key)
    doc["preset"] = "digits/cnn/full-class"  # an old key: kept in extra
    old = RunRecord.from_json(doc)
    assert old.task == "classification" and old.schema_version == 1 and old.extra["preset"] == "digits/cnn/full-class"


def test_unknown_schema_version_is_a_clear_error(make_record):
    doc = {**make_record().to_json(), "schema_version": 99}
    with pytest.raises(RecordSchemaError, match="schema version 99 is not supported"):
        RunRecord.from_json(doc)


def test_missing_fields_and_colliding_extra_are_errors(make_record):
    doc = make_record().to_json()
    del doc["metrics"]
    with pytest.raises(RecordSchemaError, match="metrics"):
        RunRecord.from_json(doc)
    with pytest.raises(RecordSchemaError, match="collide"):
        make_record().with_extra(method="x").to_json()


def test_speed_up_is_unknown_without_times(make_record):
    assert make_record().speed_up is None and make_record(time_s=0.0, retrain_time_s=1.0).speed_up is None

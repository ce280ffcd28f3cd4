"""lakehouse.events: the three object-created shapes, key decoding, deterministic execution names."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lakehouse.errors import InvalidInputError
from lakehouse.events import (
    ObjectCreated,
    execution_name,
    is_sqs_event,
    iter_sqs_bodies,
    parse_message,
    run_input,
)

EVENTS = Path(__file__).resolve().parents[2] / "events"
KEY1 = "orders/ingest_date=2026-11-26/orders part 1.csv"
KEY2 = "orders/ingest_date=2026-11-26/orders part 2.csv"
VERSION1 = "Lh5zR0pV7mQk3YcN8tWbX2dFgJ1sE9uA"
# Step Functions execution names: 1-80 chars, none of whitespace, brackets, wildcards, "#%\^|~`$&,;:/
NAME_OK = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return data


def eventbridge(
    key: str, *, version_id: str | None = "v1", sequencer: str = "00A1", etag: str = "e1"
) -> dict[str, Any]:
    obj: dict[str, Any] = {"key": key, "size": 10, "etag": etag, "sequencer": sequencer}
    if version_id is not None:
        obj["version-id"] = version_id
    return {
        "version": "0",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "time": "2026-11-26T10:00:00Z",
        "detail": {"bucket": {"name": "landing"}, "object": obj},
    }


def s3_record(key: str, event_name: str = "ObjectCreated:Put") -> dict[str, Any]:
    return {
        "eventSource": "aws:s3",
        "eventName": event_name,
        "eventTime": "2026-11-26T10:00:00.000Z",
        "s3": {
            "bucket": {"name": "landing"},
            "object": {"key": key, "size": 10, "eTag": "e1", "versionId": "v1"},
        },
    }


# -- the three shapes, from the sample events users run with `sam local invoke -e` ---------------------


def test_sqs_sample_is_an_sqs_batch_of_eventbridge_bodies() -> None:
    event = load("on_object_created_sqs.json")
    assert is_sqs_event(event)
    bodies = list(iter_sqs_bodies(event))
    assert [mid for mid, _ in bodies] == [r["messageId"] for r in event["Records"]]
    objects = [obj for _, body in bodies for obj in parse_message(body)]
    assert [o.key for o in objects] == [KEY1, KEY2]
    assert all(o.bucket == "landing" for o in objects)
    assert objects[0].version_id == VERSION1
    assert objects[0].size == 440
    assert objects[0].etag == "c2f0ba8a09233923b77a0a5a65991c9b"
    assert objects[0].sequencer == "006745A3D2C1B0E4F7"
    assert objects[0].event_time == "2026-11-26T10:15:42Z"


def test_eventbridge_sample() -> None:
    event = load("on_object_created_eventbridge.json")
    assert not is_sqs_event(event)
    [obj] = parse_message(event)
    assert obj == ObjectCreated(
        bucket="landing",
        key=KEY1,
        size=440,
        etag="c2f0ba8a09233923b77a0a5a65991c9b",
        version_id=VERSION1,
        sequencer="006745A3D2C1B0E4F7",
        event_time="2026-11-26T10:15:42Z",
    )


def test_s3_notification_sample() -> None:
    event = load("on_object_created_s3.json")
    assert not is_sqs_event(event)
    [obj] = parse_message(event)
    assert obj.bucket == "landing"
    assert obj.key == KEY1
    assert obj.version_id == VERSION1
    assert obj.etag == "c2f0ba8a09233923b77a0a5a65991c9b"
    assert obj.size == 440


def test_the_three_shapes_of_one_object_map_to_one_execution_name() -> None:
    sqs_body = json.loads(load("on_object_created_sqs.json")["Records"][0]["body"])
    objects = [
        parse_message(sqs_body)[0],
        parse_message(load("on_object_created_eventbridge.json"))[0],
        parse_message(load("on_object_created_s3.json"))[0],
    ]
    names = {execution_name("orders", o) for o in objects}
    assert len(names) == 1
    assert names == {"orders-1a4e0fbe4e8ab9ddefc0009cded7b8be4cfa0ffe"}  # what events/*.json carry as run_id


def test_stage_events_carry_the_run_id_of_the_object_created_events() -> None:
    obj = parse_message(load("on_object_created_eventbridge.json"))[0]
    expected = run_input("orders", obj)
    for name in (
        "inspect_object.json",
        "commit_object.json",
        "register_table.json",
        "quarantine_object.json",
    ):
        state = load(name)
        assert {k: state[k] for k in expected} == expected, name
    # AcquireTableLease passes the whole state as "run": the execution input, nothing more yet.
    assert load("manage_lease_acquire.json")["run"] == expected


# -- key decoding: exactly once, as each source encodes ------------------------------------------------
# S3 notifications form-encode keys (space = '+', '+' = %2B); EventBridge events do not: there a '+' is a
# literal plus, and only %XX sequences are decoded (docs/ARCHITECTURE.md, "Object keys in events").


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("orders/ingest_date%3D2026-11-26/orders+part+1.csv", KEY1),
        ("orders/a+b.csv", "orders/a b.csv"),  # a space arrives as '+'
        ("orders/a%2Bb.csv", "orders/a+b.csv"),  # a literal '+' arrives as %2B
        ("a%2B+b", "a+ b"),
        ("orders/d%3D1/x.csv", "orders/d=1/x.csv"),
        ("orders/100%25+done.csv", "orders/100% done.csv"),  # a literal '%' arrives as %25
        ("orders/%2525.csv", "orders/%25.csv"),  # decoding twice would give "orders/%.csv"
        ("orders/caf%C3%A9.csv", "orders/café.csv"),
        ("orders/plain.csv", "orders/plain.csv"),
    ],
)
def test_s3_notification_keys_are_form_decoded_once(encoded: str, decoded: str) -> None:
    assert parse_message({"Records": [s3_record(encoded)]})[0].key == decoded


@pytest.mark.parametrize(
    ("encoded", "decoded"),
    [
        ("orders/ingest_date%3D2026-11-26/orders%20part%201.csv", KEY1),
        ("orders/a+b.csv", "orders/a+b.csv"),  # '+' is a literal plus: not a space
        ("orders/c++/a+b+c.csv", "orders/c++/a+b+c.csv"),
        ("orders/a%2Bb.csv", "orders/a+b.csv"),
        ("orders/a%20b.csv", "orders/a b.csv"),
        ("orders/a b.csv", "orders/a b.csv"),  # an unencoded space is kept
        ("orders/d=1/x.csv", "orders/d=1/x.csv"),
        ("orders/d%3D1/x.csv", "orders/d=1/x.csv"),
        ("orders/100%25%20done.csv", "orders/100% done.csv"),
        ("orders/%2525.csv", "orders/%25.csv"),  # decoding twice would give "orders/%.csv"
        ("orders/caf%C3%A9.csv", "orders/café.csv"),
    ],
)
def test_eventbridge_keys_keep_plus_and_are_percent_decoded_once(encoded: str, decoded: str) -> None:
    assert parse_message(eventbridge(encoded))[0].key == decoded
    sqs_body = {
        "Records": [{"eventSource": "aws:sqs", "messageId": "m1", "body": json.dumps(eventbridge(encoded))}]
    }
    [(_, body)] = list(iter_sqs_bodies(sqs_body))
    assert parse_message(body)[0].key == decoded


def test_a_plus_key_keeps_its_identity_through_eventbridge() -> None:
    """orders/a+b.csv through the deployed path (EventBridge -> SQS) names the object that exists."""
    obj = parse_message(eventbridge("orders/a+b.csv"))[0]
    assert run_input("orders", obj)["key"] == "orders/a+b.csv"
    same = parse_message({"Records": [s3_record("orders/a%2Bb.csv")]})[0]
    assert execution_name("orders", obj) == execution_name("orders", same)


# -- what is ignored, what is an error ----------------------------------------------------------------


def test_s3_test_event_is_ignored() -> None:
    test_event = {
        "Service": "Amazon S3",
        "Event": "s3:TestEvent",
        "Time": "2026-11-26T10:00:00.000Z",
        "Bucket": "landing",
        "RequestId": "5582815E1AEA5ADF",
        "HostId": "8cLeGAmw098X5cv4Zkwcmo8vvZa3eH3eKxsPzbB9wrR+YstdA6Knx4Ip8EXAMPLE",
    }
    assert parse_message(test_event) == []


def test_non_object_created_records_are_ignored() -> None:
    message = {
        "Records": [
            s3_record("orders/a.csv", "ObjectRemoved:Delete"),
            s3_record("orders/b.csv", "ObjectCreated:CompleteMultipartUpload"),
            s3_record("orders/c.csv", "ObjectRestore:Completed"),
        ]
    }
    assert [o.key for o in parse_message(message)] == ["orders/b.csv"]


@pytest.mark.parametrize("detail_type", ["Object Deleted", "Object Restore Completed", "Object Tags Added"])
def test_other_eventbridge_s3_events_are_ignored(detail_type: str) -> None:
    event = eventbridge("orders/a.csv")
    event["detail-type"] = detail_type
    assert parse_message(event) == []


@pytest.mark.parametrize(
    "message",
    [
        {"hello": "world"},
        {"detail-type": "Object Created", "source": "aws.s3", "detail": {"bucket": {"name": "landing"}}},
        {"detail-type": "Object Created", "source": "aws.s3", "detail": {"object": {"key": "k"}}},
    ],
)
def test_unrecognised_messages_are_invalid_input(message: dict[str, Any]) -> None:
    with pytest.raises(InvalidInputError):
        parse_message(message)


def test_non_json_sqs_body_is_invalid_input() -> None:
    event = {"Records": [{"messageId": "m-1", "eventSource": "aws:sqs", "body": "not json"}]}
    with pytest.raises(InvalidInputError, match="m-1"):
        list(iter_sqs_bodies(event))


def test_is_sqs_event_needs_every_record_from_sqs() -> None:
    assert not is_sqs_event({"Records": []})
    assert not is_sqs_event({"Records": [s3_record("orders/a.csv")]})
    assert not is_sqs_event({"Records": [{"eventSource": "aws:sqs"}, s3_record("orders/a.csv")]})
    assert is_sqs_event({"Records": [{"eventSource": "aws:sqs"}]})


# -- execution names and inputs -------------------------------------------------------------------------


def obj(**overrides: Any) -> ObjectCreated:
    fields: dict[str, Any] = {
        "bucket": "landing",
        "key": KEY1,
        "size": 440,
        "etag": "e1",
        "version_id": "v1",
        "sequencer": "00A1",
        "event_time": "2026-11-26T10:00:00Z",
    }
    fields.update(overrides)
    return ObjectCreated(**fields)


def test_same_object_same_name_and_same_input() -> None:
    first = parse_message(eventbridge(KEY1))[0]
    again = parse_message(eventbridge(KEY1))[0]
    assert execution_name("orders", first) == execution_name("orders", again)
    assert run_input("orders", first) == run_input("orders", again)
    assert json.dumps(run_input("orders", first)) == json.dumps(run_input("orders", again))
    assert run_input("orders", first)["run_id"] == execution_name("orders", first)


def test_run_input_has_the_documented_fields() -> None:
    payload = run_input("orders", obj())
    assert payload == {
        "run_id": execution_name("orders", obj()),
        "dataset": "orders",
        "bucket": "landing",
        "key": KEY1,
        "version_id": "v1",
        "etag": "e1",
        "size": 440,
        "sequencer": "00A1",
        "event_time": "2026-11-26T10:00:00Z",
    }


def test_different_version_different_name() -> None:
    assert execution_name("orders", obj(version_id="v1")) != execution_name("orders", obj(version_id="v2"))


def test_unversioned_objects_are_told_apart_by_sequencer_then_etag() -> None:
    a = obj(version_id=None, sequencer="00A1")
    b = obj(version_id=None, sequencer="00A2")
    assert execution_name("orders", a) != execution_name("orders", b)
    c = obj(version_id=None, sequencer="", etag="e1")
    d = obj(version_id=None, sequencer="", etag="e2")
    assert execution_name("orders", c) != execution_name("orders", d)


def test_different_key_or_bucket_different_name() -> None:
    base = execution_name("orders", obj())
    assert execution_name("orders", obj(key=KEY2)) != base
    assert execution_name("orders", obj(bucket="other")) != base


def test_name_ignores_event_time_and_size() -> None:
    """A redelivered event may carry another timestamp; it is still the same object."""
    assert execution_name("orders", obj(event_time="2026-11-27T00:00:00Z", size=1)) == execution_name(
        "orders", obj()
    )


@pytest.mark.parametrize(
    "dataset",
    ["orders", "line_items", "a" * 200, "weird name/with:colons#and%percent", "ünïcode", "x"],
)
@pytest.mark.parametrize("key", [KEY1, "a%2B b", "k" * 1024, "dir/ with spaces /\u00e9\u00e8.csv"])
def test_names_are_valid_step_functions_names(dataset: str, key: str) -> None:
    name = execution_name(dataset, obj(key=key))
    assert NAME_OK.match(name), name
    assert len(name) <= 80
    assert execution_name(dataset, obj(key=key)) == name


def test_name_starts_with_the_dataset() -> None:
    assert execution_name("orders", obj()).startswith("orders-")
    assert re.fullmatch(r"orders-[0-9a-f]{40}", execution_name("orders", obj()))

"""Length limits of the text a callback request stores.

The engine rejects ids, queue names, language tags and IVR histories over
their limits with a ``ValidationError`` naming the field, the length and
the limit. Values at the limit are stored whole in a real SQLite store.
The last tests send over-long values to a real `callsure serve`.
"""

from __future__ import annotations

import uuid

import grpc
import pytest
from google.rpc import error_details_pb2
from scheduler_support import T0, make_scheduler, request
from serve_support import serving_channel

from callsure.actors.convert import parse_cursor
from callsure.actors.errors import decode_status, to_rpc_error
from callsure.actors.services.contacts import contact_event_from_proto
from callsure.engine.callbacks import (
    MAX_ID_LENGTH,
    MAX_IVR_STEP_LENGTH,
    MAX_IVR_STEPS,
    MAX_LANGUAGE_LENGTH,
    MAX_QUEUE_LENGTH,
)
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import NotFoundError, ValidationError
from callsure.engine.store import SQLiteStore
from callsure.v1 import callback_pb2, callback_pb2_grpc, contact_pb2, contact_pb2_grpc

LIMITS = [
    ("request_id", MAX_ID_LENGTH),
    ("customer_id", MAX_ID_LENGTH),
    ("queue", MAX_QUEUE_LENGTH),
    ("dedicated_agent_id", MAX_ID_LENGTH),
    ("language", MAX_LANGUAGE_LENGTH),
]


def build(**fields):
    customer_id = fields.pop("customer_id", "c1")
    fields.setdefault("request_id", "r1")
    return request(customer_id, **fields)


@pytest.mark.parametrize(("field", "limit"), LIMITS)
def test_text_field_over_limit_rejected(field, limit):
    with pytest.raises(ValidationError) as info:
        build(**{field: "x" * (limit + 1)})
    assert info.value.field == field
    assert f"at most {limit} characters" in info.value.fix
    assert f"has {limit + 1}" in info.value.fix


# A language must also have the shape of a BCP 47 tag, which no string of
# MAX_LANGUAGE_LENGTH letters has.
@pytest.mark.parametrize(
    ("field", "limit"), [(f, n) for f, n in LIMITS if f != "language"]
)
def test_text_field_at_limit_accepted(field, limit):
    built = build(**{field: "x" * limit})
    assert len(getattr(built, field)) == limit


@pytest.mark.parametrize("tag", ["en", "pt-BR", "es-419", "zh-Hant-TW"])
def test_language_tag_accepted(tag):
    assert build(language=tag).language == tag


@pytest.mark.parametrize("tag", ["", "english", "klingon-xx-123", "en_US", "e"])
def test_language_not_a_tag_rejected(tag):
    with pytest.raises(ValidationError) as info:
        build(language=tag)
    assert info.value.field == "language"
    assert "BCP 47" in info.value.fix


def test_megabyte_id_message_stays_short():
    with pytest.raises(ValidationError) as info:
        build(customer_id="c" * 1_000_000)
    assert "1000000" in str(info.value)
    assert len(str(info.value)) < 200


def test_ivr_history_too_many_steps_rejected():
    with pytest.raises(ValidationError) as info:
        build(ivr_history=("menu=1",) * (MAX_IVR_STEPS + 1))
    assert info.value.field == "ivr_history"
    assert f"at most {MAX_IVR_STEPS} steps" in info.value.fix
    assert f"has {MAX_IVR_STEPS + 1}" in info.value.fix


def test_ivr_step_too_long_hides_text():
    secret_digits = "4111111111111111"
    step = "account=" + secret_digits * 20
    with pytest.raises(ValidationError) as info:
        build(ivr_history=("menu=2", step))
    assert info.value.field == "ivr_history"
    assert f"at most {MAX_IVR_STEP_LENGTH} characters" in info.value.fix
    assert f"step 1 has {len(step)}" in info.value.fix
    assert secret_digits not in str(info.value)


def test_ivr_history_as_text_rejected():
    with pytest.raises(ValidationError, match="list of steps"):
        build(ivr_history="menu=1")


def test_ivr_step_not_text_rejected():
    with pytest.raises(ValidationError, match="step as text"):
        build(ivr_history=("menu=1", 2))


def test_length_error_maps_to_invalid_argument():
    with pytest.raises(ValidationError) as info:
        build(queue="q" * (MAX_QUEUE_LENGTH + 1))
    error = to_rpc_error(info.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "queue" in error.message
    assert str(MAX_QUEUE_LENGTH) in error.message


def test_values_at_limit_stored_whole(tmp_path):
    db = tmp_path / "promises.db"
    scheduler = make_scheduler(db, VirtualClock(T0))
    history = tuple(f"{i:03d}" + "m" * (MAX_IVR_STEP_LENGTH - 3) for i in range(64))
    created = scheduler.create(
        build(
            customer_id="c" * MAX_ID_LENGTH,
            request_id="r" * MAX_ID_LENGTH,
            ivr_history=history,
            language="zh-Hant-TW",
        )
    )
    scheduler.store.close()

    stored = SQLiteStore(db).get_callback(created.callback_id)
    assert stored.customer_id == "c" * MAX_ID_LENGTH
    assert stored.request_id == "r" * MAX_ID_LENGTH
    assert stored.ivr_history == history
    assert stored.language == "zh-Hant-TW"


# Through a real `callsure serve`

TOKEN = "limits-" + uuid.uuid4().hex
CALL_TIMEOUT_S = 30.0
METADATA = (("authorization", f"Bearer {TOKEN}"),)


@pytest.fixture(scope="module")
def channel():
    with serving_channel(token=TOKEN) as channel:
        yield channel


def violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    found = []
    for detail in decode_status(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found += [(v.field, v.description) for v in bad_request.field_violations]
    return found


def create(channel, **fields) -> None:
    message = callback_pb2.Callback(
        customer_id=fields.pop("customer_id", "c-limits"),
        phone_number="+14155550100",
        queue=fields.pop("queue", "billing"),
        **fields,
    )
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    stub.CreateCallback(
        callback_pb2.CreateCallbackRequest(
            callback=message, request_id=uuid.uuid4().hex
        ),
        metadata=METADATA,
        timeout=CALL_TIMEOUT_S,
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "c" * 1_000_000),
        ("queue", "q" * (MAX_QUEUE_LENGTH + 1)),
        ("ivr_history", ["menu=1"] * (MAX_IVR_STEPS + 1)),
    ],
)
def test_serve_rejects_long_field(channel, field, value):
    with pytest.raises(grpc.RpcError) as raised:
        create(channel, **{field: value})
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ((name, description),) = violations(raised.value)
    assert name == f"callback.{field}"
    assert "at most" in description


@pytest.mark.slow
def test_serve_rejects_long_contact_customer(channel):
    event = contact_pb2.ContactEvent(
        contact_id="contact-limits",
        type=contact_pb2.CONTACT_EVENT_TYPE_ARRIVED,
        customer_id="c" * (MAX_ID_LENGTH + 1),
        queue="billing",
    )
    event.event_time.GetCurrentTime()
    stub = contact_pb2_grpc.ContactServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.ReportContactEvent(
            contact_pb2.ReportContactEventRequest(event=event),
            metadata=METADATA,
            timeout=CALL_TIMEOUT_S,
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    ((name, _),) = violations(raised.value)
    assert name.endswith("customer_id")


@pytest.mark.parametrize(
    ("field", "value", "limit"),
    [
        ("contact_id", "x", MAX_ID_LENGTH),
        ("queue", "x", MAX_QUEUE_LENGTH),
        ("customer_id", "x", MAX_ID_LENGTH),
        ("agent", "agents/x", MAX_ID_LENGTH),
    ],
)
def test_contact_event_field_over_limit_rejected(field, value, limit):
    event = contact_pb2.ContactEvent(
        contact_id="contact-limits",
        type=contact_pb2.CONTACT_EVENT_TYPE_ANSWERED,
        queue="billing",
        agent="agents/a1",
    )
    event.event_time.GetCurrentTime()
    setattr(event, field, value + "x" * limit)
    with pytest.raises(ValidationError) as info:
        contact_event_from_proto(event)
    assert info.value.field == f"event.{field}"
    assert f"at most {limit} characters" in info.value.fix


@pytest.mark.parametrize("cursor", ["9" * 5000, str(2**63), "١٢"])
def test_event_cursor_out_of_range_rejected(cursor):
    with pytest.raises(ValidationError) as info:
        parse_cursor(cursor)
    assert info.value.field == "after_cursor"


def test_error_reply_clips_long_values():
    name = "callbacks/" + "a" * 5000
    error = to_rpc_error(NotFoundError("callback", name))
    assert len(error.message) < 600
    (resource,) = error.details
    assert len(resource.resource_name) < 600
    assert resource.resource_name.endswith("(5010 characters)")


@pytest.mark.parametrize("value", ["a\nb", "a\x01b", "a\x00"])
def test_control_characters_in_id_rejected(value):
    with pytest.raises(ValidationError) as info:
        build(customer_id=value)
    assert info.value.field == "customer_id"
    assert "control characters" in info.value.fix

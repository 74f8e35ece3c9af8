"""End to end through `callsure serve` with the SIP gateway enabled.

A real `callsure serve` subprocess (private folder, Ray and gRPC on
127.0.0.1) starts its ``CallGatewayActor``. Callbacks created over gRPC
are dialed to pjsua2 customer phones and bridged to a pjsua2 agent phone;
an inbound caller walks the IVR, whose promise the coordinator stores.
Times come from the event stream, never from the test's own clock.
"""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from serve_support import sip_serving
from sip_peers import PhoneBank, concatenate_wavs, wav_rms
from test_sip_gateway import corpus_file

from callsure.actors.sip.callflow import IVR_HISTORY_HEADER
from callsure.v1 import callback_pb2, callback_pb2_grpc, event_pb2, event_pb2_grpc

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

HUMAN = "+15554000001"
BUSY = "+15554000486"
CALLER = "+15554000777"
CALL_TIMEOUT_S = 30.0
EVENT_TIMEOUT_S = 60.0
# The server logs the gateway's SIP addresses and endpoint pids before it
# prints its ready line.
GATEWAY_LINE = re.compile(r"ready on (.+?) \(endpoint processes \[([\d, ]*)\]\)")


@pytest.fixture(scope="module")
def customers(amd_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("customers")
    talking = concatenate_wavs(
        [corpus_file(amd_corpus, "HUMAN")] * 2, folder / "talking.wav"
    )
    behaviours = {
        HUMAN: {
            "action": "answer",
            "delay_s": 0.3,
            "play": str(talking),
            "hangup_after_s": 10.0,
        },
        BUSY: {"action": "reject", "code": 486},
    }
    with PhoneBank(behaviours, name="customers") as bank:
        yield bank


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agents")
    behaviours = {
        "billing": {
            "action": "answer",
            "delay_s": 0.2,
            "record": str(folder / "billing.wav"),
        }
    }
    with PhoneBank(behaviours, name="agents") as bank:
        yield bank


@pytest.fixture
def callers():
    with PhoneBank({}, name="callers") as bank:
        yield bank


@pytest.fixture(scope="module")
def server(customers, agents):
    with sip_serving(customers, agents) as process:
        yield process


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def gateway_line(server) -> tuple[list[str], list[int]]:
    """Return the gateway's SIP addresses and endpoint pids from the log."""
    match = GATEWAY_LINE.search(server.log())
    assert match, server.log()
    addresses = match.group(1).split(", ")
    pids = [int(pid) for pid in match.group(2).split(",") if pid.strip()]
    return addresses, pids


def create(channel, number: str, **fields) -> callback_pb2.Callback:
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    callback = callback_pb2.Callback(
        customer_id=f"customer-{number}",
        phone_number=number,
        queue="billing",
        ivr_history=["greeting", "offer=2"],
        **fields,
    )
    request = callback_pb2.CreateCallbackRequest(
        callback=callback, request_id=uuid.uuid4().hex
    )
    return stub.CreateCallback(request, timeout=CALL_TIMEOUT_S).callback


def events_until(channel, name: str, kind: str) -> list:
    """Read the event stream until callback ``name`` has an event of ``kind``."""
    stub = event_pb2_grpc.EventServiceStub(channel)
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        request = event_pb2.StreamEventsRequest()
        events = [
            response.event
            for response in stub.StreamEvents(request, timeout=CALL_TIMEOUT_S)
            if response.event.callback == name
        ]
        if any(event.kind == kind for event in events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} for {name}; got {events}")
        time.sleep(0.3)


def first_time(events, kind: str) -> datetime:
    event = next(event for event in events if event.kind == kind)
    return event.event_time.ToDatetime(tzinfo=UTC)


def test_gateway_started_with_endpoints(server):
    addresses, pids = gateway_line(server)
    assert len(addresses) == 2
    assert all(address.startswith("127.0.0.1:") for address in addresses)
    assert len(pids) == 2


def test_promised_time_dialed_and_bridged(channel, agents):
    wanted = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=8)
    message = callback_pb2.Callback()
    message.requested_time.FromDatetime(wanted)
    callback = create(
        channel,
        HUMAN,
        mode=callback_pb2.CALLBACK_MODE_AT_TIME,
        requested_time=message.requested_time,
    )
    promised = callback.promised_window.start_time.ToDatetime(tzinfo=UTC)

    events = events_until(channel, callback.name, "callback.completed")

    assert promised == wanted
    dialed = first_time(events, "attempt.dialing")
    assert abs((dialed - promised).total_seconds()) <= 1.0
    outcomes = [event.outcome for event in events if event.kind == "attempt.outcome"]
    assert outcomes == [callback_pb2.CALL_OUTCOME_CONNECTED]
    incoming = agents.wait_for(
        lambda e: e["ev"] == "incoming" and e["user"] == "billing"
    )
    assert incoming["headers"][IVR_HISTORY_HEADER] == "greeting,offer%3D2"
    recorded = agents.wait_for(lambda e: e["ev"] == "recorded", timeout_s=30)
    assert wav_rms(recorded["path"]) > 200


def test_busy_customer_retry_scheduled(channel):
    callback = create(channel, BUSY)

    events = events_until(channel, callback.name, "callback.retry_scheduled")

    outcomes = [event.outcome for event in events if event.kind == "attempt.outcome"]
    assert outcomes == [callback_pb2.CALL_OUTCOME_BUSY]


def test_inbound_caller_promised_by_coordinator(server, channel, callers):
    addresses, _ = gateway_line(server)
    callers.dial(f"sip:ivr@{addresses[0]}", user=CALLER, dtmf_plan=[[6.0, "3"]])
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        listed = stub.ListCallbacks(
            callback_pb2.ListCallbacksRequest(customer_id=CALLER),
            timeout=CALL_TIMEOUT_S,
        ).callbacks
        if listed or time.monotonic() > deadline:
            break
        time.sleep(0.3)

    assert len(listed) == 1, server.log()[-4000:]
    assert listed[0].mode == callback_pb2.CALLBACK_MODE_PREDICTED
    assert "offer=3" in listed[0].ivr_history
    assert listed[0].promised_window.HasField("start_time")


def test_sigterm_stops_endpoint_processes(server):
    _, pids = gateway_line(server)

    status = server.terminate()

    assert status == 0
    assert [pid for pid in pids if running(pid)] == []


def running(pid: int) -> bool:
    """Tell whether ``pid`` is alive; a zombie waiting to be reaped is not."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            state = stat.read().rpartition(")")[2].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"

"""A campaign end to end through `callsure serve` with the SIP gateway enabled.

A real `callsure serve` subprocess (private folder, Ray, gRPC and SIP on
127.0.0.1) starts its ``CallGatewayActor``. A campaign created over gRPC
is dialed to pjsua2 customer phones. One plays a person from the labelled
corpus and is bridged to the agent phone of the campaign's queue with the
target's context lines. One is busy and gets the retry ladder. One
belongs to a customer with an open callback and is skipped. Outcomes are
read from the event stream and GetCampaign, never timed by the test.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from serve_support import sip_serving
from sip_peers import PhoneBank, concatenate_wavs, wav_rms
from test_sip_gateway import corpus_file

from callsure.actors.sip.callflow import IVR_HISTORY_HEADER
from callsure.v1 import (
    callback_pb2,
    callback_pb2_grpc,
    campaign_pb2,
    campaign_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

HUMAN = "+15554100001"
BUSY = "+15554100486"
HAS_CALLBACK = "+15554100002"
CALL_TIMEOUT_S = 30.0
EVENT_TIMEOUT_S = 90.0


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
        # The customer's own callback rings here without an answer, so it
        # stays open while the campaign runs.
        HAS_CALLBACK: {"action": "ring"},
    }
    with PhoneBank(behaviours, name="customers") as bank:
        yield bank


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agents")
    behaviours = {
        "support": {
            "action": "answer",
            "delay_s": 0.2,
            "record": str(folder / "support.wav"),
        }
    }
    with PhoneBank(behaviours, name="agents") as bank:
        yield bank


@pytest.fixture(scope="module")
def server(customers, agents):
    with sip_serving(customers, agents) as process:
        yield process


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def events_of(channel, callback: str) -> list:
    stub = event_pb2_grpc.EventServiceStub(channel)
    return [
        response.event
        for response in stub.StreamEvents(
            event_pb2.StreamEventsRequest(), timeout=CALL_TIMEOUT_S
        )
        if response.event.callback == callback
    ]


def wait_for_event(channel, callback: str, kind: str) -> list:
    """Read the event stream until ``callback`` has an event of ``kind``."""
    deadline = time.monotonic() + EVENT_TIMEOUT_S
    while True:
        events = events_of(channel, callback)
        if any(event.kind == kind for event in events):
            return events
        if time.monotonic() > deadline:
            raise AssertionError(f"no {kind} for {callback}; got {events}")
        time.sleep(0.3)


@pytest.fixture(scope="module")
def campaign(channel):
    """A running ticket-update campaign of three targets, the third of a
    customer who asked for a callback first."""
    callbacks = callback_pb2_grpc.CallbackServiceStub(channel)
    callbacks.CreateCallback(
        callback_pb2.CreateCallbackRequest(
            callback=callback_pb2.Callback(
                customer_id="c-callback", phone_number=HAS_CALLBACK, queue="support"
            ),
            request_id=uuid.uuid4().hex,
        ),
        timeout=CALL_TIMEOUT_S,
    )

    stub = campaign_pb2_grpc.CampaignServiceStub(channel)
    now = datetime.now(UTC)
    message = campaign_pb2.Campaign(
        display_name="ticket updates",
        kind=campaign_pb2.CAMPAIGN_KIND_VOC_TICKET_UPDATE,
        queue="support",
        max_in_flight=2,
    )
    message.start_time.FromDatetime(now)
    message.end_time.FromDatetime(now + timedelta(hours=1))
    created = stub.CreateCampaign(
        campaign_pb2.CreateCampaignRequest(
            campaign=message, request_id=uuid.uuid4().hex
        ),
        timeout=CALL_TIMEOUT_S,
    ).campaign

    added = stub.AddCampaignTargets(
        campaign_pb2.AddCampaignTargetsRequest(
            campaign=created.name,
            targets=[
                campaign_pb2.CampaignTarget(
                    customer_id="c-human",
                    phone_number=HUMAN,
                    context=["ticket=T-1042", "status=resolved"],
                ),
                campaign_pb2.CampaignTarget(customer_id="c-busy", phone_number=BUSY),
                campaign_pb2.CampaignTarget(
                    customer_id="c-callback", phone_number=HAS_CALLBACK
                ),
            ],
        ),
        timeout=CALL_TIMEOUT_S,
    )
    stub.StartCampaign(
        campaign_pb2.StartCampaignRequest(name=created.name), timeout=CALL_TIMEOUT_S
    )
    return created.name, {t.customer_id: t.callback for t in added.targets}


def test_person_bridged_with_context(channel, agents, campaign):
    _, targets = campaign

    events = wait_for_event(channel, targets["c-human"], "callback.completed")

    outcomes = [e.outcome for e in events if e.kind == "attempt.outcome"]
    assert outcomes == [callback_pb2.CALL_OUTCOME_CONNECTED]
    incoming = agents.wait_for(
        lambda e: e["ev"] == "incoming" and e["user"] == "support"
    )
    assert incoming["headers"][IVR_HISTORY_HEADER] == (
        "ticket%3DT-1042,status%3Dresolved"
    )
    recorded = agents.wait_for(lambda e: e["ev"] == "recorded", timeout_s=30)
    assert wav_rms(recorded["path"]) > 200


def test_busy_target_retried(channel, campaign):
    _, targets = campaign

    events = wait_for_event(channel, targets["c-busy"], "callback.retry_scheduled")

    outcomes = [e.outcome for e in events if e.kind == "attempt.outcome"]
    assert outcomes == [callback_pb2.CALL_OUTCOME_BUSY]


def test_customer_with_callback_skipped(channel, campaign):
    _, targets = campaign

    events = wait_for_event(channel, targets["c-callback"], "callback.dropped")

    assert not any(event.kind == "attempt.dialing" for event in events)
    assert "open callback" in events[-1].detail


def test_counts_report_outcomes(channel, campaign):
    name, targets = campaign
    wait_for_event(channel, targets["c-human"], "callback.completed")
    wait_for_event(channel, targets["c-busy"], "callback.retry_scheduled")
    stub = campaign_pb2_grpc.CampaignServiceStub(channel)

    summary = stub.GetCampaign(
        campaign_pb2.GetCampaignRequest(name=name), timeout=CALL_TIMEOUT_S
    )

    outcomes = {c.outcome: c.count for c in summary.outcome_counts}
    states = {c.state: c.count for c in summary.target_counts}
    assert outcomes[callback_pb2.CALL_OUTCOME_CONNECTED] == 1
    assert outcomes[callback_pb2.CALL_OUTCOME_BUSY] >= 1
    assert states[callback_pb2.CALLBACK_STATE_COMPLETED] == 1
    assert states[callback_pb2.CALLBACK_STATE_DROPPED] == 1

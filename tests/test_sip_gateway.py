"""The SIP call gateway against pjsua2 test phones on 127.0.0.1.

One gateway (two endpoint processes) and two banks of test phones, for
customers and for agents, serve the whole module; each test dials its own
numbers.
"""

from __future__ import annotations

import csv
import functools
import itertools
import os
import signal
import socket
import threading
import time
import wave
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sip_peers import PhoneBank, concatenate_wavs, wav_rms

from callsure.actors.sip.callflow import (
    CALLBACK_ID_HEADER,
    IVR_HISTORY_HEADER,
    CallReport,
)
from callsure.actors.sip.gateway import CallGateway, GatewaySettings
from callsure.actors.sip.outcomes import sit_code_from_name
from callsure.dsp.analyzer import StreamAnalyzer
from callsure.dsp.wav import read_wav
from callsure.engine.callbacks import DialMode, DialOrder, DialTarget, Outcome

pytestmark = pytest.mark.timeout(120)

_serial = itertools.count(1)


class Reports:
    """Outcomes and events collected from the gateway's callbacks."""

    def __init__(self):
        self.reports: dict[str, CallReport] = {}
        self.events: list[tuple[str, dict]] = []
        self._condition = threading.Condition()

    def on_outcome(self, report: CallReport) -> None:
        with self._condition:
            self.reports[report.attempt_id] = report
            self._condition.notify_all()

    def on_event(self, kind: str, payload: dict) -> None:
        with self._condition:
            self.events.append((kind, payload))
            self._condition.notify_all()

    def wait(self, attempt_id: str, timeout_s: float = 30.0) -> CallReport:
        deadline = time.monotonic() + timeout_s
        with self._condition:
            while attempt_id not in self.reports:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no outcome for {attempt_id}")
                self._condition.wait(remaining)
            return self.reports[attempt_id]


def make_order(
    number: str,
    agent: str = "agent-1",
    mode: DialMode = DialMode.CUSTOMER_FIRST,
    history: tuple[str, ...] = ("greeting", "offer=3"),
) -> DialOrder:
    serial = next(_serial)
    now = datetime.now(UTC)
    return DialOrder(
        attempt_id=f"cb-{serial}/1",
        idempotency_key=f"cb-{serial}/1",
        callback_id=f"cb-{serial}",
        customer_id=f"customer-{serial}",
        phone_number=number,
        attempt_number=1,
        lease_expires_at=now + timedelta(minutes=5),
        target=DialTarget("billing", agent),
        dial_mode=mode,
        priority=0,
        grade="regular",
        entry_time=now,
        promised_time=now,
        ivr_history=history,
        language="en",
    )


def offline_verdict(path: str):
    """The analyser's verdict on a WAV file read directly, without SIP."""
    analyzer = StreamAnalyzer()
    analyzer.feed(read_wav(path).samples)
    return analyzer.verdict or analyzer.finish()


@functools.cache
def corpus_file(
    amd_corpus, label: str, sit_code: bool = False, beep: bool = False
) -> str:
    """The corpus file of ``label`` that the analyser classifies soonest as such.

    The gateway tests check the SIP path (taps, batching, flow), not the
    detector's accuracy, so they use the clearest case of each label:
    classified right offline, and decided earliest.
    """
    with open(amd_corpus / "labels.csv", newline="") as labels:
        names = [
            row["file"]
            for row in csv.DictReader(labels)
            if row["label"] == label and (row["beep_onset_ms"] or not beep)
        ]
    candidates = []
    for name in names:
        verdict = offline_verdict(str(amd_corpus / name))
        if verdict.kind.name != label:
            continue
        if sit_code and sit_code_from_name(verdict.sit_code) is None:
            continue
        if beep and verdict.beep_ms is None:
            continue
        candidates.append((verdict.decided_ms, name))
    if not candidates:
        raise AssertionError(f"no {label} file of the corpus is classified {label}")
    return str(amd_corpus / min(candidates)[1])


@pytest.fixture(scope="module")
def phones(amd_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("phones")
    human = corpus_file(amd_corpus, "HUMAN")
    # A person who says hello, waits, and says it again: the second time
    # is heard by the agent after the bridge.
    talking = str(folder / "hello-again.wav")
    concatenate_wavs([human, human], talking)
    behaviours = {
        "+15550000486": {"action": "reject", "code": 486},
        "+15550000600": {"action": "reject", "code": 600},
        "+15550000480": {"action": "reject", "code": 480},
        "+15550000404": {"action": "reject", "code": 404},
        "+15550000503": {"action": "reject", "code": 503},
        "+15550000180": {"action": "ring"},
        "+15550000001": {
            "action": "answer",
            "delay_s": 0.3,
            "play": talking,
            "hangup_after_s": 12.0,
        },
        "+15550000002": {
            "action": "answer",
            "delay_s": 0.3,
            "play": corpus_file(amd_corpus, "MACHINE"),
        },
        "+15550000003": {
            "action": "answer",
            "delay_s": 0.3,
            "play": corpus_file(amd_corpus, "SIT", sit_code=True),
        },
        "+15550000004": {
            "action": "answer",
            "delay_s": 0.2,
            "play": human,
            "hangup_after_s": 6.0,
        },
        "+15550000005": {
            "action": "answer",
            "delay_s": 0.2,
            "play": human,
            "dtmf_plan": [[6.0, "1"]],
            "hangup_after_s": 10.0,
        },
        "+15550000008": {"action": "answer", "delay_s": 0.2, "play": human},
        "+15550000007": {
            "action": "answer",
            "delay_s": 0.3,
            "play": corpus_file(amd_corpus, "MACHINE", beep=True),
            "record": str(folder / "voicemail.wav"),
        },
        "+15550000006": {
            "action": "answer",
            "delay_s": 0.2,
            "play": human,
            "hangup_after_s": 10.0,
        },
    }
    # A pjsua2 process holds 4 calls (the wheel's limit), so customers and
    # agents get a process each.
    with PhoneBank(behaviours, name="customers") as bank:
        yield bank


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agents")
    behaviours = {
        "agent-1": {
            "action": "answer",
            "delay_s": 0.2,
            "record": str(folder / "a1.wav"),
        },
        "agent-ring": {"action": "ring"},
        "agent-first": {"action": "answer", "delay_s": 0.2},
        "agent-refer": {"action": "answer", "delay_s": 0.2},
    }
    with PhoneBank(behaviours, name="agents") as bank:
        yield bank


@pytest.fixture(scope="module")
def reports():
    return Reports()


@pytest.fixture(scope="module")
def gateway(phones, agents, reports):
    settings = GatewaySettings(
        endpoint_processes=2,
        customer_uri_template=phones.uri_template("number"),
        agent_uri_template=agents.uri_template("agent"),
        ring_timeout_s=10.0,
    )
    with CallGateway(settings, reports.on_outcome, reports.on_event) as gateway:
        yield gateway


@pytest.fixture
def defaults(gateway):
    """Restore the call-flow settings a test changes."""
    saved = gateway.settings
    yield gateway
    gateway.settings = saved


def test_endpoints_probe_wheel_call_limit(gateway):
    # The PyPI pjsua2 wheel is built with PJSUA_MAX_CALLS = 4.
    assert [e.max_calls for e in gateway.endpoints] == [4, 4]
    assert gateway.capacity == 8


@pytest.mark.parametrize(
    ("number", "outcome"),
    [
        ("+15550000486", Outcome.BUSY),
        ("+15550000600", Outcome.BUSY),
        ("+15550000480", Outcome.NO_ANSWER),
        ("+15550000404", Outcome.INVALID_NUMBER),
        ("+15550000503", Outcome.NETWORK_FAILURE),
    ],
)
def test_final_response_maps_to_outcome(gateway, reports, number, outcome):
    order = make_order(number)
    gateway.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is outcome
    assert report.sip_status == int(number[-3:])


def test_ring_timeout_cancels_as_no_answer(defaults, phones, reports):
    defaults.update_settings(ring_timeout_s=1.0)
    order = make_order("+15550000180")
    defaults.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.NO_ANSWER
    assert report.detail == "ring timeout"
    cancelled = phones.wait_for(
        lambda e: (
            e["ev"] == "state"
            and e["user"] == "+15550000180"
            and e["state"] == "DISCONNECTED"
        )
    )
    assert cancelled["code"] == 487


def test_dead_peer_ends_on_engine_timer(defaults, reports):
    # A UDP socket that never answers: PJSIP alone would wait 32 s (timer B).
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    defaults.update_settings(
        ring_timeout_s=1.0, customer_uri_template=f"sip:{{number}}@127.0.0.1:{port}"
    )
    try:
        order = make_order("+15550000999")
        started = time.monotonic()
        defaults.dial(order)
        report = reports.wait(order.attempt_id, timeout_s=10)
        elapsed = time.monotonic() - started
    finally:
        silent.close()
    assert report.outcome is Outcome.NO_ANSWER
    assert report.detail == "ring timeout, no ringing reported"
    assert elapsed < 10


def test_duplicate_order_dialed_once(gateway, phones, reports):
    order = make_order("+15550000486")
    gateway.dial(order)
    gateway.dial(order)
    reports.wait(order.attempt_id)
    time.sleep(0.5)
    dialed = [
        e
        for e in phones.events
        if e["ev"] == "incoming"
        and e["headers"].get("X-Callsure-Attempt-Id") == order.attempt_id
    ]
    assert len(dialed) == 1


def test_person_bridged_to_agent_with_history(gateway, agents, reports):
    order = make_order("+15550000001", history=("greeting", "offer=3", "billing"))
    gateway.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.CONNECTED
    assert report.verdict == "HUMAN"
    assert report.agent_id == "agent-1"
    agent_call = agents.wait_for(
        lambda e: (
            e["ev"] == "incoming"
            and e["user"] == "agent-1"
            and e["headers"].get(CALLBACK_ID_HEADER) == order.callback_id
        )
    )
    assert agent_call["headers"][IVR_HISTORY_HEADER] == "greeting,offer%3D3,billing"
    bridged = [
        payload
        for kind, payload in reports.events
        if kind == "call.bridged" and payload.get("attempt_id") == order.attempt_id
    ]
    assert bridged[0]["ivr_history"] == ["greeting", "offer=3", "billing"]


def test_agent_hears_customer_audio(gateway, agents, reports):
    recorded = agents.wait_for(
        lambda e: e["ev"] == "recorded" and e["user"] == "agent-1", timeout_s=30
    )
    # The customer's file is speech at a normal level; silence would be
    # near 0 and comfort noise below 50.
    assert wav_rms(recorded["path"]) > 200


def test_machine_hung_up_and_reported(gateway, reports):
    order = make_order("+15550000002")
    gateway.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.MACHINE
    assert report.verdict == "MACHINE"


def test_sit_reported_with_code(gateway, reports, amd_corpus):
    expected = offline_verdict(corpus_file(amd_corpus, "SIT", sit_code=True))
    order = make_order("+15550000003")
    gateway.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.SIT
    assert report.sit_code is sit_code_from_name(expected.sit_code)


def test_customer_hangup_cancels_ringing_agent(defaults, agents, reports):
    order = make_order("+15550000004", agent="agent-ring")
    defaults.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.CUSTOMER_HUNG_UP
    agent_end = agents.wait_for(
        lambda e: (
            e["ev"] == "state"
            and e["user"] == "agent-ring"
            and e["state"] == "DISCONNECTED"
        )
    )
    assert agent_end["code"] == 487


def test_dtmf_confirmation_then_bridge(defaults, phones, reports):
    defaults.update_settings(confirm_with_dtmf=True, confirm_timeout_s=8.0)
    order = make_order("+15550000005", agent="agent-first")
    defaults.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.CONNECTED
    digits = [
        p for k, p in reports.events
        if k == "call.dtmf" and p.get("attempt_id") == order.attempt_id
    ]  # fmt: skip
    assert digits[0]["digit"] == "1"


def test_agent_first_dials_agent_before_customer(defaults, reports):
    order = make_order("+15550000006", agent="agent-first", mode=DialMode.AGENT_FIRST)
    defaults.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.CONNECTED
    legs = [
        p["leg"]
        for k, p in reports.events
        if k == "call.dialing" and p.get("attempt_id") == order.attempt_id
    ]
    assert legs == ["agent", "customer"]


def test_crashed_endpoint_fails_calls_and_restarts(gateway, phones, reports):
    order = make_order("+15550000180")
    gateway.dial(order)
    phones.wait_for(
        lambda e: (
            e["ev"] == "incoming"
            and e["headers"].get("X-Callsure-Attempt-Id") == order.attempt_id
        )
    )
    holder = next(
        e for e in gateway.endpoints if f"{order.attempt_id}#customer" in e.calls
    )
    old_pid = holder.pid
    os.kill(old_pid, signal.SIGKILL)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.NETWORK_FAILURE
    deadline = time.monotonic() + 20
    while not (holder.alive and holder.pid != old_pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert holder.pid != old_pid
    assert gateway.capacity == 8


def test_machine_gets_message_after_beep(defaults, phones, reports):
    defaults.update_settings(machine_action="leave_message", beep_wait_s=6.0)
    order = make_order("+15550000007")
    defaults.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.MACHINE
    assert report.detail.startswith("MACHINE: message left")
    recorded = phones.wait_for(
        lambda e: e["ev"] == "recorded" and e["user"] == "+15550000007", timeout_s=20
    )
    # The voicemail recorded the message prompt.
    assert wav_rms(recorded["path"]) > 200


def attempt_events(reports: Reports, attempt_id: str) -> list[tuple[str, dict]]:
    return [
        (kind, payload)
        for kind, payload in list(reports.events)
        if payload.get("attempt_id") == attempt_id
    ]


def test_refer_moves_customer_to_agent(defaults, phones, agents, reports):
    defaults.update_settings(bridge_method="refer")
    order = make_order("+15550000008", agent="agent-refer")
    defaults.dial(order)
    report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.CONNECTED
    # The status line of the NOTIFY's sipfrag body (RFC 3515).
    assert report.detail == "transferred by REFER: 200 OK"
    kinds = [kind for kind, _ in attempt_events(reports, order.attempt_id)]
    statuses = [
        payload["code"]
        for kind, payload in attempt_events(reports, order.attempt_id)
        if kind == "call.transfer"
    ]
    # The REFER's acceptance alone did not connect the call: the outcome
    # follows the NOTIFY that reports the agent's 200.
    assert statuses[0] < 200
    assert statuses[-1] == 200
    assert kinds.index("call.outcome") > kinds.index("call.transfer")
    assert kinds.count("call.outcome") == 1
    transfer = phones.wait_for(
        lambda e: e["ev"] == "transfer" and e["user"] == "+15550000008"
    )
    phones.wait_for(
        lambda e: (
            e["ev"] == "state"
            and e["call"] == transfer["new_call"]
            and e["state"] == "CONFIRMED"
        )
    )
    incoming = agents.wait_for(
        lambda e: e["ev"] == "incoming" and e["user"] == "agent-refer"
    )
    # The customer's phone placed the agent call (RFC 3515), carrying the
    # headers of the Refer-To URI.
    assert incoming["source"].rpartition(":")[2] == phones.address.rpartition(":")[2]
    assert incoming["headers"][CALLBACK_ID_HEADER] == order.callback_id
    assert incoming["headers"][IVR_HISTORY_HEADER] == "greeting,offer%3D3"


def person_answering(amd_corpus, **extra) -> dict:
    """Return a phone behaviour: answer after 0.2 s and play a person."""
    return {
        "action": "answer",
        "delay_s": 0.2,
        "play": corpus_file(amd_corpus, "HUMAN"),
        **extra,
    }


def transfer_to(amd_corpus, agent: dict) -> tuple[CallReport, list, dict]:
    """Transfer a person by REFER to an agent phone with the behaviour ``agent``.

    Returns the report, the attempt's gateway events and the DISCONNECTED
    event of the customer's call with the gateway. The phones are the
    caller's own: a pjsua2 phone process takes 4 calls, and the customer's
    phone places the agent call.
    """
    reports = Reports()
    person = person_answering(amd_corpus)

    with (
        PhoneBank({"+15550000010": person}, name="refer-customers") as phones,
        PhoneBank({"agent-refer": agent}, name="refer-agents") as agents,
    ):
        settings = GatewaySettings(
            endpoint_processes=1,
            customer_uri_template=phones.uri_template("number"),
            agent_uri_template=agents.uri_template("agent"),
            ring_timeout_s=10.0,
            agent_ring_timeout_s=1.0,
            bridge_method="refer",
        )
        with CallGateway(settings, reports.on_outcome, reports.on_event) as gateway:
            order = make_order("+15550000010", agent="agent-refer")
            gateway.dial(order)
            report = reports.wait(order.attempt_id, timeout_s=40)

            incoming = phones.wait_for(lambda e: e["ev"] == "incoming")
            customer_end = phones.wait_for(
                lambda e: (
                    e["ev"] == "state"
                    and e["call"] == incoming["call"]
                    and e["state"] == "DISCONNECTED"
                )
            )
    return report, attempt_events(reports, order.attempt_id), customer_end


def test_refer_rejected_by_agent_reported_failed(amd_corpus):
    agent = {"action": "reject", "code": 486, "delay_s": 0.2}
    report, events, customer_end = transfer_to(amd_corpus, agent)

    assert report.outcome is Outcome.UNKNOWN
    # The status line of the final NOTIFY's sipfrag body.
    assert report.detail == "transfer failed: 486 Busy Here"
    assert report.agent_id is None
    kinds = [kind for kind, _ in events]
    assert kinds.count("call.outcome") == 1
    # The gateway hung up the customer's leg when the transfer failed.
    assert customer_end["code"] == 200


def test_refer_without_final_notify_times_out(amd_corpus):
    # The agent's phone rings forever, so the transferee sends no final
    # NOTIFY.
    report, events, customer_end = transfer_to(amd_corpus, {"action": "ring"})

    assert report.outcome is Outcome.UNKNOWN
    # The agent's ring timeout (1 s) plus the transfer margin (10 s).
    assert report.detail == "transfer failed: no final NOTIFY within 11 s"
    statuses = [payload["code"] for kind, payload in events if kind == "call.transfer"]
    # The REFER was accepted, and no NOTIFY reported a final status.
    assert statuses
    assert all(code < 200 for code in statuses)
    assert customer_end["code"] == 200


def test_packet_40_ms_detects_person(amd_corpus):
    # 40 ms packets with silence suppression, the settings for many calls on
    # few cores. The phones are the test's own, so calls that other tests
    # leave up cannot fill them.
    reports = Reports()
    person = person_answering(amd_corpus)
    with (
        PhoneBank({"+15550000040": person}, name="packet-customers") as phones,
        PhoneBank({"agent-40": {"action": "answer"}}, name="packet-agents") as agents,
    ):
        settings = GatewaySettings(
            endpoint_processes=1,
            customer_uri_template=phones.uri_template("number"),
            agent_uri_template=agents.uri_template("agent"),
            ring_timeout_s=10.0,
            packet_ms=40,
            send_silence_suppression=True,
        )
        with CallGateway(settings, reports.on_outcome, reports.on_event) as gateway:
            order = make_order("+15550000040", agent="agent-40")
            gateway.dial(order)
            report = reports.wait(order.attempt_id)
    assert report.outcome is Outcome.CONNECTED
    assert report.verdict == "HUMAN"


def dtmf_tone_wav(path, digit_hz=(697, 1209), tone_ms=100, rate_hz=8000) -> str:
    """Write a WAV of one DTMF key as audio: two sine tones, then silence."""
    t = np.arange(rate_hz * tone_ms // 1000) / rate_hz
    low, high = digit_hz
    tone = 8000 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
    samples = np.concatenate([tone, np.zeros(rate_hz // 2)]).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate_hz)
        out.writeframes(samples.tobytes())
    return str(path)


def test_inband_dtmf_confirms_bridge(amd_corpus, tmp_path):
    # The customer presses 1 as audio tones (697 + 1209 Hz) and the phone
    # sends no RFC 4733 event, so only the analyser can hear the key.
    reports = Reports()
    key_one = dtmf_tone_wav(tmp_path / "key-1.wav")
    person = person_answering(
        amd_corpus, play_plan=[[6.0, key_one]], hangup_after_s=12.0
    )

    with (
        PhoneBank({"+15550000050": person}, name="inband-customers") as phones,
        PhoneBank({"agent-50": {"action": "answer"}}, name="inband-agents") as agents,
    ):
        settings = GatewaySettings(
            endpoint_processes=1,
            customer_uri_template=phones.uri_template("number"),
            agent_uri_template=agents.uri_template("agent"),
            ring_timeout_s=10.0,
            confirm_with_dtmf=True,
            confirm_timeout_s=10.0,
        )
        with CallGateway(settings, reports.on_outcome, reports.on_event) as gateway:
            order = make_order("+15550000050", agent="agent-50")
            gateway.dial(order)
            report = reports.wait(order.attempt_id)
            played = phones.wait_for(lambda e: e["ev"] == "played")

    assert report.outcome is Outcome.CONNECTED
    assert report.agent_id == "agent-50"
    assert played["path"] == key_one
    assert not [e for e in phones.events if e["ev"] == "dtmf_sent"]

    digits = [
        payload
        for kind, payload in attempt_events(reports, order.attempt_id)
        if kind == "call.dtmf"
    ]
    assert digits[0]["digit"] == "1"
    assert digits[0]["source"] == "inband"

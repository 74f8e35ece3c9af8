"""Early media: audio heard before answer, from pjsua2 phones on 127.0.0.1.

The customer's phone answers the INVITE with 183 Session Progress and an
SDP, plays a WAV file as early media, then rejects the call or answers
it. The gateway analyses the early media like answered audio and
publishes ``call.early_media`` with the verdict. Each test has phones and
a gateway of its own, so calls other tests leave up cannot fill them.
"""

from __future__ import annotations

import wave

import numpy as np
import pytest
from sip_peers import PhoneBank
from test_sip_gateway import (
    Reports,
    attempt_events,
    corpus_file,
    make_order,
    offline_verdict,
)

from callsure.actors.sip.gateway import CallGateway, GatewaySettings
from callsure.actors.sip.outcomes import sit_code_from_name
from callsure.engine.callbacks import Outcome

pytestmark = pytest.mark.timeout(120)

RATE_HZ = 8000


def write_wav(path, samples: np.ndarray) -> str:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE_HZ)
        out.writeframes(np.asarray(samples, dtype="<i2").tobytes())
    return str(path)


def ringback(seconds: float) -> np.ndarray:
    """North American ringback: 440 + 480 Hz, 2 s on and 4 s off."""
    t = np.arange(int(seconds * RATE_HZ)) / RATE_HZ
    tone = 4000 * (np.sin(2 * np.pi * 440 * t) + np.sin(2 * np.pi * 480 * t))
    return np.where(t % 6.0 < 2.0, tone, 0.0).astype(np.int16)


def dial_once(number: str, customer: dict):
    """Dial ``number``, answered by a phone with behaviour ``customer``.

    Returns the report, the attempt's gateway events and the phone bank's
    events.
    """
    reports = Reports()
    agent = {"action": "answer", "delay_s": 0.2}
    with (
        PhoneBank({number: customer}, name="early-customers") as phones,
        PhoneBank({"agent-early": agent}, name="early-agents") as agents,
    ):
        settings = GatewaySettings(
            endpoint_processes=1,
            customer_uri_template=phones.uri_template("number"),
            agent_uri_template=agents.uri_template("agent"),
            ring_timeout_s=20.0,
        )
        with CallGateway(settings, reports.on_outcome, reports.on_event) as gateway:
            order = make_order(number, agent="agent-early")
            gateway.dial(order)
            report = reports.wait(order.attempt_id, timeout_s=40)
            phones.wait_for(
                lambda e: e["ev"] == "state" and e["state"] == "DISCONNECTED",
                timeout_s=30,
            )
            phone_events = list(phones.events)
    return report, attempt_events(reports, order.attempt_id), phone_events


def phone_states(phone_events) -> list[tuple[str, int]]:
    return [(e["state"], e["code"]) for e in phone_events if e["ev"] == "state"]


def early_verdicts(events) -> list[dict]:
    return [payload for kind, payload in events if kind == "call.early_media"]


@pytest.mark.parametrize("final", [404, 480])
def test_sit_early_media_then_reject(amd_corpus, final):
    sit = corpus_file(amd_corpus, "SIT", sit_code=True)
    expected = offline_verdict(sit)
    # The network plays the tones and the announcement, then gives up.
    customer = {
        "action": "early",
        "play": sit,
        "early_s": 4.0,
        "then": {"action": "reject", "code": final},
    }
    report, events, phone_events = dial_once("+15550001183", customer)

    assert report.outcome is Outcome.SIT
    assert report.sit_code is sit_code_from_name(expected.sit_code)
    assert report.verdict == "SIT"
    assert early_verdicts(events)[0]["verdict"] == "SIT"
    # The phone sent 183 with an SDP, so the tones were early media.
    assert ("EARLY", 183) in phone_states(phone_events)
    assert "call.answered" not in [kind for kind, _ in events]


def test_sit_early_media_quick_reject(amd_corpus):
    # The final response comes as soon as the tones have been played, so
    # it may reach the gateway before the analyser's verdict on them.
    sit = corpus_file(amd_corpus, "SIT", sit_code=True)
    expected = offline_verdict(sit)
    customer = {
        "action": "early",
        "play": sit,
        "early_s": expected.decided_ms / 1000 + 0.2,
        "then": {"action": "reject", "code": 404},
    }
    report, events, _ = dial_once("+15550002183", customer)

    assert report.outcome is Outcome.SIT
    assert report.sit_code is sit_code_from_name(expected.sit_code)
    assert early_verdicts(events)[0]["verdict"] == "SIT"


def test_ringback_then_person_connected(amd_corpus, tmp_path):
    ring = write_wav(tmp_path / "ringback.wav", ringback(8.0))
    person = corpus_file(amd_corpus, "HUMAN")
    customer = {
        "action": "early",
        "play": ring,
        "early_s": 7.0,
        "then": {"action": "answer", "play": person, "hangup_after_s": 10.0},
    }
    report, events, phone_events = dial_once("+15550003183", customer)

    assert report.outcome is Outcome.CONNECTED
    assert report.verdict == "HUMAN"
    assert report.agent_id == "agent-early"
    kinds = [kind for kind, _ in events]
    # Ringback before answer gives no verdict or NOTSURE, and the analysis
    # starts afresh at answer.
    assert all(p["verdict"] == "NOTSURE" for p in early_verdicts(events))
    assert kinds.index("call.answered") < kinds.index("call.verdict")
    assert ("EARLY", 183) in phone_states(phone_events)
    assert any(e["ev"] == "early_end" for e in phone_events)

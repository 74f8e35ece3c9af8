"""RFC 4733 digits of consecutive calls from one pjsua2 phone process.

One endpoint process of the gateway answers; one ``PhoneBank`` process
places the calls and presses keys with RFC 4733 events, all on 127.0.0.1.
"""

from __future__ import annotations

import threading
import time

import pytest
from sip_peers import PhoneBank

from callsure.actors.sip.endpoints import EndpointProcess

pytestmark = pytest.mark.timeout(120)


class EndpointEvents:
    """Events of one endpoint process, kept for ``wait``."""

    def __init__(self):
        self.items: list[dict] = []
        self.condition = threading.Condition()

    def __call__(self, endpoint: EndpointProcess, event: dict) -> None:
        with self.condition:
            self.items.append(event)
            self.condition.notify_all()

    def wait(self, predicate, timeout_s: float = 20.0) -> list[dict]:
        """Return the events so far once one matches ``predicate``."""
        deadline = time.monotonic() + timeout_s
        with self.condition:
            while not any(predicate(event) for event in self.items):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching event; got {self.items}")
                self.condition.wait(remaining)
            return list(self.items)

    def digits(self, call: str) -> str:
        with self.condition:
            return "".join(
                e["digit"]
                for e in self.items
                if e["ev"] == "dtmf" and e["call"] == call
            )


@pytest.fixture
def events():
    return EndpointEvents()


@pytest.fixture
def endpoint(events):
    spec = {
        "name": "sip-dtmf",
        "bind_address": "127.0.0.1",
        "trunk_sources": ["127.0.0.1"],
        "codecs": ["PCMU/8000", "PCMA/8000"],
    }
    process = EndpointProcess(0, spec, events)
    process.start()
    yield process
    process.stop()


def test_each_call_from_one_phone_delivers_digits(endpoint, events):
    calls = [("+14155550301", "12"), ("+14155550302", "34"), ("+14155550303", "56")]
    keys = []
    with PhoneBank({}, name="dtmf-callers") as callers:
        for number, digits in calls:
            # Each call is placed as soon as the previous one ended, and its
            # keys are pressed 1.5 s after answer. Unless the phone turns off
            # PJSUA's sound-device auto-close, its conference clock stops 1 s
            # after a call ended, which silences the next call's RTP and digits.
            callers.dial(
                f"sip:ivr@{endpoint.sip_address}",
                user=number,
                dtmf_plan=[[1.5, digits]],
            )
            seen = events.wait(
                lambda e, n=number: e["ev"] == "incoming" and n in e["remote_uri"]
            )
            key = next(
                e["call"]
                for e in seen
                if e["ev"] == "incoming" and number in e["remote_uri"]
            )
            keys.append(key)
            endpoint.send({"op": "answer", "call": key})
            callers.wait_for(
                lambda e, n=number: e["ev"] == "dtmf_sent" and e["user"] == n
            )
            try:
                events.wait(
                    lambda e, k=key, d=digits: (
                        e["ev"] == "dtmf" and e["call"] == k and e["digit"] == d[-1]
                    ),
                    timeout_s=10.0,
                )
            except TimeoutError:
                pass  # The asserts below name the call whose digits were lost.
            endpoint.send({"op": "hangup", "call": key})
            callers.wait_for(
                lambda e, n=number: (
                    e["ev"] == "state"
                    and e["user"] == n
                    and e["state"] == "DISCONNECTED"
                )
            )
    assert events.digits(keys[0]) == "12"
    assert events.digits(keys[1]) == "34"
    assert events.digits(keys[2]) == "56"

"""Inbound calls: trunk source filtering and the surge IVR with the real scheduler.

The IVR runs the shipped scenario against a ``CallbackScheduler`` on a
real SQLite file; callers are pjsua2 test phones that press keys with
RFC 4733 events.
"""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sip_peers import PhoneBank, wav_rms

from callsure.actors.sip.backend import SchedulerIvrBackend
from callsure.actors.sip.gateway import CallGateway, GatewaySettings
from callsure.engine.callbacks import CallbackMode
from callsure.engine.clock import SystemClock, VirtualClock
from callsure.engine.prediction import ErlangAPredictor, StaticForecast
from callsure.engine.scheduler import CallbackScheduler
from callsure.engine.store import SQLiteStore

pytestmark = pytest.mark.timeout(120)

# One call a minute, 3 minutes handling, 8 agents: inbound needs about 5
# agents, so the predictor has room for callbacks.
FORECAST = StaticForecast(
    arrivals_per_s=1 / 60, agents_on_duty=8, mean_handle_s=180, mean_patience_s=345
)


class Events:
    def __init__(self):
        self.items: list[tuple[str, dict]] = []
        self.condition = threading.Condition()

    def __call__(self, kind: str, payload: dict) -> None:
        with self.condition:
            self.items.append((kind, payload))
            self.condition.notify_all()

    def wait(self, predicate, timeout_s: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout_s
        with self.condition:
            while True:
                for kind, payload in self.items:
                    if predicate(kind, payload):
                        return payload
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no matching event; got {self.items}")
                self.condition.wait(remaining)


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "callsure.db"
    predictor = ErlangAPredictor({"general": FORECAST}, horizon_s=86400)
    return CallbackScheduler(SQLiteStore(path), predictor, SystemClock())


@pytest.fixture(scope="module")
def events():
    return Events()


@pytest.fixture(scope="module")
def gateway(scheduler, events):
    settings = GatewaySettings(endpoint_processes=1, trunk_sources=("127.0.0.1",))
    backend = SchedulerIvrBackend(scheduler, "UTC")
    with CallGateway(settings, lambda report: None, events, backend) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def callers():
    # One bank places every IVR call of the module, one after another.
    with PhoneBank({}, name="callers") as bank:
        yield bank


def invite(target: str, source: tuple[str, int], index: int) -> bytes:
    """A minimal RFC 3261 INVITE without a body, from ``source``."""
    host, port = source
    lines = [
        f"INVITE sip:ivr@{target} SIP/2.0",
        f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK-flood-{index}",
        "Max-Forwards: 70",
        f"From: <sip:+15550009999@{host}>;tag=flood{index}",
        f"To: <sip:ivr@{target}>",
        f"Call-ID: flood-{index}@{host}",
        "CSeq: 1 INVITE",
        f"Contact: <sip:+15550009999@{host}:{port}>",
        "Content-Length: 0",
        "",
        "",
    ]
    return "\r\n".join(lines).encode()


def final_statuses(sock: socket.socket, count: int, timeout_s: float) -> dict:
    """Collect the final status per Call-ID of ``count`` requests."""
    statuses: dict[str, int] = {}
    deadline = time.monotonic() + timeout_s
    while len(statuses) < count and time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65535).decode()
        except TimeoutError:
            break
        status = int(data.split(" ", 2)[1])
        call_id = next(
            line.split(":", 1)[1].strip()
            for line in data.split("\r\n")
            if line.lower().startswith("call-id:")
        )
        if status >= 200:
            statuses[call_id] = status
    return statuses


def test_invite_flood_from_untrusted_source_rejected(gateway, events):
    flood = 200
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.2", 0))
    target = gateway.sip_addresses[0]
    host, port = target.rsplit(":", 1)
    try:
        # About 1,000 INVITEs a second.
        for index in range(flood):
            sock.sendto(invite(target, sock.getsockname(), index), (host, int(port)))
            time.sleep(0.001)
        statuses = final_statuses(sock, flood, timeout_s=20)
    finally:
        sock.close()
    forbidden = sum(1 for status in statuses.values() if status == 403)
    assert len(statuses) == flood
    # 403 from the source filter; 486 from PJSUA itself when more INVITEs
    # than call slots arrive within one event-loop slice.
    assert set(statuses.values()) <= {403, 486}
    assert forbidden > flood // 2
    rejected = events.wait(lambda kind, payload: kind == "sip.rejected")
    assert rejected["source"] == "127.0.0.2"
    counts = gateway.stats()[0]["rejected_sources"]
    assert counts == {"127.0.0.2": forbidden}
    # The log and the event stream see the first rejection and each 100th.
    published = sum(1 for kind, _ in events.items if kind == "sip.rejected")
    assert published == 1 + forbidden // 100
    assert gateway.endpoints[0].alive


def test_flood_leaves_slots_for_trunk_calls(gateway):
    assert gateway.endpoints[0].free_slots == gateway.endpoints[0].max_calls


def test_ivr_predicted_callback_promised_and_read_back(
    gateway, callers, scheduler, events, tmp_path
):
    recording = tmp_path / "caller.wav"
    caller = "+14155550123"
    callers.dial(
        f"sip:ivr@{gateway.sip_addresses[0]}",
        user=caller,
        dtmf_plan=[[6.0, "3"]],
        record=str(recording),
    )
    ended = events.wait(lambda kind, payload: kind == "ivr.ended", timeout_s=40)
    promised = events.wait(lambda kind, payload: kind == "ivr.callback_promised")

    assert ended["history"][:3] == ["greeting", "offer", "offer=3"]
    assert ended["history"][-1] == "promise_at"
    assert len(promised["promised_time"]) == 4
    callbacks, _ = scheduler.list()
    assert len(callbacks) == 1
    assert callbacks[0].mode is CallbackMode.PREDICTED
    assert "offer=3" in callbacks[0].ivr_history
    callers.wait_for(lambda e: e["ev"] == "recorded" and e["user"] == caller)
    assert wav_rms(recording) > 200


def test_ivr_caller_chosen_time(gateway, callers, scheduler, events):
    caller = "+14155550124"
    wanted = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    keyed = wanted.strftime("%H%M")
    callers.dial(
        f"sip:ivr@{gateway.sip_addresses[0]}",
        user=caller,
        dtmf_plan=[[6.0, "2"], [9.0, keyed]],
    )
    ended = events.wait(
        lambda kind, payload: (
            kind == "ivr.ended" and f"ask_time={keyed}" in payload["history"]
        ),
        timeout_s=40,
    )
    assert ended["history"][-1] == "promise_at"
    callbacks, _ = scheduler.list(customer_id=caller)
    assert callbacks[0].mode is CallbackMode.AT_TIME
    assert callbacks[0].promised_time == wanted


def keyed_time_backend(path, now: datetime) -> SchedulerIvrBackend:
    predictor = ErlangAPredictor({"general": FORECAST}, horizon_s=86400)
    scheduler = CallbackScheduler(SQLiteStore(path), predictor, VirtualClock(now))
    return SchedulerIvrBackend(scheduler, "UTC")


def test_ivr_keyed_current_minute_means_now(tmp_path):
    # The caller keys 0749 at 07:49:06: the promise is for now, and the
    # IVR reads back 0749, not a refusal for tomorrow's 07:49.
    now = datetime(2026, 12, 6, 7, 49, 6, tzinfo=UTC)
    backend = keyed_time_backend(tmp_path / "callsure.db", now)
    promised = backend.request_callback(
        "+14155550126", "general", "at_time", "0749", ()
    )
    assert promised == now
    assert promised.strftime("%H%M") == "0749"
    callbacks, _ = backend.scheduler.list(customer_id="+14155550126")
    assert callbacks[0].promised_time == now


def test_ivr_keyed_past_minute_means_tomorrow(tmp_path):
    now = datetime(2026, 12, 6, 7, 49, 6, tzinfo=UTC)
    backend = keyed_time_backend(tmp_path / "callsure.db", now)
    promised = backend.request_callback(
        "+14155550127", "general", "at_time", "0748", ()
    )
    assert promised == datetime(2026, 12, 7, 7, 48, tzinfo=UTC)


class DispatcherProbe:
    """IVR backend that waits, inside a backend call, for a dispatcher timer.

    Were the backend called on the gateway's dispatcher thread, the timer
    could not run until the call returned, and the wait would time out.
    """

    def __init__(self, inner, gateway):
        self.inner = inner
        self.gateway = gateway
        self.timer_ran = threading.Event()
        self.ran_during_call: bool | None = None

    def estimate_wait_s(self, caller: str, queue: str) -> float:
        self.gateway.schedule(0.0, self.timer_ran.set)
        self.ran_during_call = self.timer_ran.wait(10.0)
        return self.inner.estimate_wait_s(caller, queue)

    def request_callback(self, *arguments):
        return self.inner.request_callback(*arguments)


def test_ivr_backend_call_leaves_dispatcher_free(gateway, callers, events):
    probe = DispatcherProbe(gateway.ivr_backend, gateway)
    original, gateway.ivr_backend = gateway.ivr_backend, probe
    seen = len(events.items)
    try:
        callers.dial(
            f"sip:ivr@{gateway.sip_addresses[0]}",
            user="+14155550125",
            hangup_after_s=8.0,
        )
        events.wait(
            lambda kind, payload: (
                kind == "ivr.wait_estimated"
                and events.items.index((kind, payload)) >= seen
            ),
            timeout_s=40,
        )
    finally:
        gateway.ivr_backend = original
    assert probe.ran_during_call is True

"""End to end: the engine's scheduler releases callbacks, the gateway dials them.

The real ``CallbackScheduler`` on a SQLite file and the wall clock hands
its dial orders to a ``CallGateway``; pjsua2 test phones play corpus
recordings or answer busy, ring without answer, or play a special
information tone. A driver thread plays the coordinator's part: it calls
``due`` every 100 ms, claims each attempt with ``start_dialing``, dials
it, and reports the gateway's outcome with ``report_outcome``.
"""

from __future__ import annotations

import queue
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sip_peers import PhoneBank, concatenate_wavs, wav_rms
from test_sip_gateway import corpus_file, offline_verdict

from callsure.actors.sip.callflow import IVR_HISTORY_HEADER
from callsure.actors.sip.gateway import CallGateway, GatewaySettings
from callsure.actors.sip.outcomes import sit_code_from_name
from callsure.engine.callbacks import (
    CallbackMode,
    CallbackRequest,
    CallbackState,
    Outcome,
)
from callsure.engine.clock import SystemClock
from callsure.engine.policy import (
    BAD_NUMBER_SIT_CODES,
    RetryPolicy,
    RetryRule,
    SchedulerPolicy,
)
from callsure.engine.prediction import ErlangAPredictor, StaticForecast
from callsure.engine.scheduler import CallbackScheduler
from callsure.engine.store import SQLiteStore

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

QUIET = StaticForecast(
    arrivals_per_s=1 / 60, agents_on_duty=8, mean_handle_s=180, mean_patience_s=345
)
# Short delays so the whole ladder runs within the test.
RETRY = RetryPolicy(
    rules={
        Outcome.BUSY: RetryRule(2, (1.0,)),
        Outcome.NO_ANSWER: RetryRule(1, (1.0,)),
        Outcome.MACHINE: RetryRule(1, (1.0,)),
        Outcome.SIT: RetryRule(1, (1.0,)),
        Outcome.NETWORK_FAILURE: RetryRule(1, (1.0,)),
        Outcome.UNKNOWN: RetryRule(1, (1.0,)),
    },
    max_attempts=5,
)

HUMAN, MACHINE, SIT, BUSY, RINGING = (
    "+15551000001",
    "+15551000002",
    "+15551000003",
    "+15551000004",
    "+15551000005",
)


class Driver:
    """The coordinator's dispatch loop, on one thread, over the real scheduler."""

    def __init__(self, scheduler, gateway: CallGateway, outcomes: queue.Queue):
        self.scheduler = scheduler
        self.gateway = gateway
        self.outcomes = outcomes
        self.dialed: dict[str, list[tuple[str, datetime]]] = {}
        self.results: list = []
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception as error:  # noqa: BLE001 - surfaced by the test
                self.errors.append(error)
            time.sleep(0.1)

    def _tick(self) -> None:
        with self._lock:
            orders = self.scheduler.due()
            for order in orders:
                self.scheduler.start_dialing(order.attempt_id, "gateway-test")
                self.dialed.setdefault(order.callback_id, []).append(
                    (order.attempt_id, datetime.now(UTC))
                )
        for order in orders:
            self.gateway.dial(order)
        while True:
            try:
                report = self.outcomes.get_nowait()
            except queue.Empty:
                return
            with self._lock:
                result = self.scheduler.report_outcome(
                    report.attempt_id,
                    report.outcome,
                    sit_code=report.sit_code,
                    detail=report.detail,
                    agent_id=report.agent_id,
                )
                self.results.append(result)

    def wait_final(self, callback_id: str, timeout_s: float = 60.0):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert not self.errors, self.errors
            with self._lock:
                callback = self.scheduler.get(callback_id)
            if callback.state.is_final:
                return callback
            time.sleep(0.2)
        raise TimeoutError(f"callback {callback_id} not final: {callback.state}")


@pytest.fixture(scope="module")
def customers(amd_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("customers")
    talking = concatenate_wavs(
        [corpus_file(amd_corpus, "HUMAN")] * 2, folder / "hello-again.wav"
    )
    behaviours = {
        HUMAN: {
            "action": "answer",
            "delay_s": 0.5,
            "play": str(talking),
            "hangup_after_s": 11.0,
        },
        MACHINE: {
            "action": "answer",
            "delay_s": 0.3,
            "play": corpus_file(amd_corpus, "MACHINE"),
        },
        SIT: {
            "action": "answer",
            "delay_s": 0.3,
            "play": corpus_file(amd_corpus, "SIT", sit_code=True),
        },
        BUSY: {"action": "reject", "code": 486},
        RINGING: {"action": "ring"},
    }
    with PhoneBank(behaviours, name="customers") as bank:
        yield bank


@pytest.fixture(scope="module")
def agents(tmp_path_factory):
    folder = tmp_path_factory.mktemp("agents")
    behaviours = {
        "billing": {"action": "answer", "delay_s": 0.2, "record": str(folder / "b.wav")}
    }
    with PhoneBank(behaviours, name="agents") as bank:
        yield bank


@pytest.fixture(scope="module")
def driver(customers, agents, tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "callsure.db"
    scheduler = CallbackScheduler(
        SQLiteStore(path),
        ErlangAPredictor({"billing": QUIET}, horizon_s=86400),
        SystemClock(),
        SchedulerPolicy(retry=RETRY),
    )
    settings = GatewaySettings(
        endpoint_processes=3,
        customer_uri_template=customers.uri_template("number"),
        agent_uri_template=agents.uri_template("agent"),
        ring_timeout_s=2.0,
    )
    outcomes: queue.Queue = queue.Queue()
    gateway = CallGateway(settings, outcomes.put)
    gateway.start()
    driver = Driver(scheduler, gateway, outcomes)
    driver.start()
    yield driver
    driver.stop()
    gateway.stop()


def create(driver: Driver, number: str, **fields) -> str:
    request = CallbackRequest(
        request_id=f"e2e-{number}-{time.monotonic_ns()}",
        customer_id=f"customer-{number}",
        queue="billing",
        phone_number=number,
        ivr_history=("greeting", "offer=2", f"ask_time={number[-4:]}"),
        **fields,
    )
    with driver._lock:
        return driver.scheduler.create(request).callback_id


def outcomes_of(driver: Driver, callback_id: str) -> list[Outcome]:
    with driver._lock:
        return [a.outcome for a in driver.scheduler.attempts(callback_id)]


def sms_requested(driver: Driver, callback_id: str) -> bool:
    events, after = [], 0
    with driver._lock:
        while page := driver.scheduler.read_events(after, 1000):
            events += page
            after = page[-1].seq
    return any(
        e.kind == "sms.requested" and e.callback_id == callback_id for e in events
    )


def test_promised_time_dialed_and_person_bridged(driver, agents):
    wanted = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=6)
    callback_id = create(
        driver, HUMAN, mode=CallbackMode.AT_TIME, requested_time=wanted
    )
    with driver._lock:
        promised = driver.scheduler.get(callback_id).promised_time

    callback = driver.wait_final(callback_id)

    assert callback.state is CallbackState.COMPLETED
    first_dial = driver.dialed[callback_id][0][1]
    assert abs((first_dial - promised).total_seconds()) <= 1.0
    assert outcomes_of(driver, callback_id) == [Outcome.CONNECTED]
    incoming = agents.wait_for(
        lambda e: e["ev"] == "incoming" and e["user"] == "billing"
    )
    history = incoming["headers"][IVR_HISTORY_HEADER]
    assert history == "greeting,offer%3D2,ask_time%3D0001"
    recorded = agents.wait_for(lambda e: e["ev"] == "recorded", timeout_s=30)
    assert wav_rms(recorded["path"]) > 200


def test_machine_retried_then_sms(driver):
    callback_id = create(driver, MACHINE)
    callback = driver.wait_final(callback_id)
    assert outcomes_of(driver, callback_id) == [Outcome.MACHINE, Outcome.MACHINE]
    assert callback.state is CallbackState.FAILED
    assert sms_requested(driver, callback_id)


def test_sit_outcome_follows_its_code(driver, amd_corpus):
    expected = sit_code_from_name(
        offline_verdict(corpus_file(amd_corpus, "SIT", sit_code=True)).sit_code
    )
    callback_id = create(driver, SIT)
    driver.wait_final(callback_id)
    with driver._lock:
        attempts = driver.scheduler.attempts(callback_id)
    assert attempts[0].outcome is Outcome.SIT
    assert attempts[0].sit_code is expected
    # IC and VC mean the number is bad: never retried. Others are retried.
    retried = expected not in BAD_NUMBER_SIT_CODES
    assert len(attempts) == (2 if retried else 1)


def test_busy_ladder_ends_in_sms(driver):
    callback_id = create(driver, BUSY)
    callback = driver.wait_final(callback_id)
    assert outcomes_of(driver, callback_id) == [Outcome.BUSY] * 3
    assert callback.state is CallbackState.FAILED
    assert sms_requested(driver, callback_id)


def test_no_answer_ladder_ends_in_sms(driver):
    callback_id = create(driver, RINGING)
    callback = driver.wait_final(callback_id)
    assert outcomes_of(driver, callback_id) == [Outcome.NO_ANSWER] * 2
    assert callback.state is CallbackState.FAILED
    assert sms_requested(driver, callback_id)

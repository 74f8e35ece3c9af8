"""Run the surge demo: wire the stack, drive the traffic, collect the report.

``run_demo`` builds the workload, starts the ``DemoStack``, configures the
server over gRPC (agents, dedicated customers, a retry ladder compressed
like the traffic), then lets the ``Desk`` replay the callers while the
gateway answers the IVR and dials the callbacks. Threads besides the
desk's and the gateway's:

- ``orders``: takes dial orders from the relay, claims each with
  ``Coordinator.start_dialing`` and hands it to the gateway;
- ``outcomes``: reports each call's outcome to the coordinator;
- ``journal``: reads the coordinator's event journal into the tally;
- ``cti``: sends agent states and contact events over gRPC, in order.
"""

from __future__ import annotations

import collections
import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from google.protobuf.duration_pb2 import Duration

from callsure.actors.demo.tally import Tally
from callsure.actors.demo.workload import (
    PREMIUM,
    VIP_AGENT,
    DemoCall,
    DemoWorkload,
    common_prior,
)
from callsure.engine.callbacks import Outcome
from callsure.engine.exceptions import CallsureError
from callsure.engine.phone import mask_number

logger = logging.getLogger(__name__)

DIALER_NAME = "demo-gateway"
IVR_URI_USER = "surge"
# Caller lines: two banks of the wheel's four calls, six in use at once so
# IVR calls leave gateway slots for callbacks.
CALLER_BANKS = 2
IVR_LINES = 6
# Callbacks in flight at once. The customers' and the agents' phone banks
# are one pjsua2 process each, of the wheel's four calls; an INVITE beyond
# them gets 486 or 503 from PJSUA itself, which would pass for a busy
# customer. A call slot also stays taken for a moment after the gateway
# reports the call ended, hence one line less than four.
CUSTOMER_LINES = 3
# The log's longest service (3,736 s) at 12x lasts 311 s.
STALE_LINE_S = 600.0
# When the caller presses keys, in seconds after the call is answered:
# the greeting with the wait takes about 4 s, the offer prompt 7 s more
# and accepts a key while it plays.
OFFER_KEY_S = 5.5
TIME_KEYS_S = 8.5
FALLBACK_KEY_S = 17.0
CALLER_HANGUP_S = 30.0
# IVR choices: 1 = when an agent is free, 3 = at the predicted time,
# 2 = at a keyed time, "" = hang up and keep waiting in the queue.
CHOICES = (("1", 0.45), ("3", 0.33), ("2", 0.14), ("", 0.08))


@dataclass(frozen=True)
class DemoOptions:
    """Options of one demo run (the command's flags)."""

    log_path: Path
    recordings: Path
    start: str
    minutes: float
    speed: float
    seed: int
    drain_s: float
    retail_agents: int
    premium_agents: int
    db_path: str | None = None


def run_demo(
    config, options: DemoOptions, folder: Path, ray_folder: Path, view
) -> dict:
    """Run the demo end to end and return the report (see ``Tally.report``)."""
    from callsure.actors.demo.backend import GrpcIvrBackend
    from callsure.actors.demo.desk import Desk
    from callsure.actors.demo.stack import DemoStack, demo_config, gateway_settings

    workload = DemoWorkload.build(
        options.log_path,
        options.recordings,
        options.start,
        options.minutes,
        options.speed,
        options.seed,
        {"retail": options.retail_agents, PREMIUM: options.premium_agents},
    )
    logger.info(
        "demo: %d callers from %s, %g minutes at %gx",
        len(workload.calls),
        workload.start_local.isoformat(timespec="minutes"),
        options.minutes,
        options.speed,
    )
    config = demo_config(
        config,
        folder,
        options.db_path,
        ray_folder,
        common_prior(workload.forecasts),
    )
    stack = DemoStack(config, folder)
    tally = Tally(workload, config.prediction.keep_window_s)
    numbers = workload.numbers
    vip = set(workload.vip_customers)

    desk_holder: dict = {}

    def directory(number: str) -> tuple[str, str, bool, int]:
        call = numbers.get(number)
        if call is None:
            raise CallsureError(f"unknown calling number {mask_number(number)}")
        ahead = desk_holder["desk"].position(number)
        return call.customer_id, call.group, call.customer_id in vip, ahead

    try:
        stack.start_server()
        cti = CtiSender(stack.channel)
        _configure_server(stack, workload, options.speed)
        stack.register_relay(DIALER_NAME)

        customers = stack.start_phones(
            "customers",
            workload.answers,
            {"action": "reject", "code": 404},
            tally.on_customer_phone_event,
        )
        agents = stack.start_phones(
            "agents",
            {},
            {"action": "answer", "delay_s": 0.5},
            lambda event: _on_agent_phone_event(event, desk_holder),
        )
        callers = [
            stack.start_phones(
                f"callers-{index}",
                {},
                {"action": "reject", "code": 404},
                tally.on_caller_phone_event,
            )
            for index in range(CALLER_BANKS)
        ]
        outcomes: queue.Queue = queue.Queue()
        backend = GrpcIvrBackend(
            stack.channel,
            directory,
            config.prediction.zone,
            on_promise=lambda number, mode, callback: (
                tally.on_promise(number, mode, callback),
                desk_holder["desk"].on_promise(number),
            ),
        )

        def on_gateway_event(kind: str, payload: dict) -> None:
            tally.on_gateway_event(kind, payload)
            if kind == "call.ended" and "attempt_id" in payload:
                workers_holder["workers"].on_call_ended(payload["attempt_id"])

        workers_holder: dict = {}
        gateway = stack.start_gateway(
            gateway_settings(config, customers.address, agents.address, options.speed),
            lambda report: outcomes.put(report),
            on_gateway_event,
            backend,
        )
        ivr = IvrDialer(callers, gateway.sip_addresses, config.prediction.zone, tally)
        ivr.seed(options.seed)
        desk = Desk(
            workload, cti.agent_state, ivr.dial, tally.due_callbacks, cti.contact
        )
        desk_holder["desk"] = desk
        tally.desk = desk
        ivr.on_ended = desk.on_ivr_ended

        workers = Workers(stack, gateway, outcomes, tally)
        workers_holder["workers"] = workers
        workers.start()
        for agent_id in desk.agents:
            cti.agent_state(agent_id, busy=False)
        desk.start()
        view.start(tally)
        _wait_until_done(desk, tally, workload, options.drain_s)
        view.stop()
        desk.stop()
        workers.stop()
        cti.stop()
        report = tally.report(
            command_options=options, elapsed_s=desk.elapsed_s, server=stack.address
        )
    finally:
        view.stop()
        stack.close()
    return report


def _wait_until_done(desk, tally, workload, drain_s: float) -> None:
    """Wait for the last arrival, then until callbacks are final or drain ends."""
    while not desk.arrivals_done:
        time.sleep(0.2)
    end_of_traffic = time.monotonic()
    while time.monotonic() - end_of_traffic < drain_s:
        if tally.open_promises() == 0 and not tally.ivr_in_progress():
            break
        time.sleep(0.5)


def _on_agent_phone_event(event: dict, desk_holder: dict) -> None:
    desk = desk_holder.get("desk")
    if desk is None:
        return
    if event["ev"] == "incoming":
        desk.on_agent_leg(event["call"], event["user"])
    elif event["ev"] == "state" and event["state"] == "DISCONNECTED":
        desk.on_agent_leg_ended(event["call"])


def _configure_server(stack, workload: DemoWorkload, speed: float) -> None:
    """Agents, the VIP's dedicated customers and a compressed retry ladder."""
    from callsure.v1 import admin_pb2, admin_pb2_grpc, agent_pb2, agent_pb2_grpc

    stack.ensure_pools(workload.agents)
    agents = agent_pb2_grpc.AgentServiceStub(stack.channel)
    for group, agent_ids in workload.agents.items():
        for agent_id in agent_ids:
            dedicated = workload.vip_customers if agent_id == VIP_AGENT else []
            agents.UpdateAgent(
                agent_pb2.UpdateAgentRequest(
                    agent=agent_pb2.Agent(
                        name=f"agents/{agent_id}",
                        group=group,
                        dedicated_customer_ids=dedicated,
                    ),
                    allow_missing=True,
                ),
                timeout=10,
            )
    admin = admin_pb2_grpc.AdminServiceStub(stack.channel)
    rules = []
    for outcome, retries, delay_s in retry_ladder(speed):
        rule = admin_pb2.RetryRule(outcome=outcome, max_retries=retries)
        rule.delays.append(Duration(seconds=int(delay_s)))
        rules.append(rule)
    admin.UpdateRetryPolicy(
        admin_pb2.UpdateRetryPolicyRequest(max_attempts=3, rules=rules), timeout=10
    )


def retry_ladder(speed: float) -> list[tuple[int, int, float]]:
    """Divide the engine's default retry delays by ``speed``, keeping 5-20 s."""
    from callsure.v1 import callback_pb2

    defaults = (
        (callback_pb2.CALL_OUTCOME_BUSY, 2, 120.0),
        (callback_pb2.CALL_OUTCOME_NO_ANSWER, 1, 600.0),
        (callback_pb2.CALL_OUTCOME_MACHINE, 1, 900.0),
        (callback_pb2.CALL_OUTCOME_SIT, 1, 600.0),
        (callback_pb2.CALL_OUTCOME_SILENCE, 1, 300.0),
        (callback_pb2.CALL_OUTCOME_CUSTOMER_HUNG_UP, 1, 300.0),
        (callback_pb2.CALL_OUTCOME_NETWORK_FAILURE, 2, 60.0),
    )
    return [
        (outcome, retries, min(20.0, max(5.0, delay / speed)))
        for outcome, retries, delay in defaults
    ]


class CtiSender:
    """Send agent states and contact events over gRPC from one thread, in order.

    These feed the prediction model (queue, staffing, handling times and
    patience) and the customers' contact history (repeat callers).
    """

    def __init__(self, channel):
        from callsure.v1 import agent_pb2_grpc, contact_pb2_grpc

        self._agents = agent_pb2_grpc.AgentServiceStub(channel)
        self._contacts = contact_pb2_grpc.ContactServiceStub(channel)
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="cti", daemon=True)
        self._thread.start()

    def agent_state(self, agent_id: str, busy: bool) -> None:
        self._queue.put(("agent", (agent_id, busy), datetime.now(UTC)))

    def contact(self, kind: str, call: DemoCall, agent_id: str = "") -> None:
        """Queue a contact event: arrived, queued, answered, abandoned, ended."""
        self._queue.put(("contact", (kind, call, agent_id), datetime.now(UTC)))

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(5.0)

    def _run(self) -> None:
        from google.protobuf.timestamp_pb2 import Timestamp

        while True:
            item = self._queue.get()
            if item is None:
                return
            what, values, when = item
            stamp = Timestamp()
            stamp.FromDatetime(when)
            try:
                if what == "agent":
                    self._send_state(*values, stamp)
                else:
                    self._send_contact(*values, stamp)
            except Exception:  # noqa: BLE001 - one lost event must not stop the CTI
                logger.exception("cti: %s event %s not sent", what, values[0])

    def _send_state(self, agent_id: str, busy: bool, stamp) -> None:
        from callsure.v1 import agent_pb2

        state = agent_pb2.AGENT_STATE_BUSY if busy else agent_pb2.AGENT_STATE_READY
        self._agents.ReportAgentState(
            agent_pb2.ReportAgentStateRequest(
                agent=f"agents/{agent_id}", state=state, event_time=stamp
            ),
            timeout=5,
        )

    def _send_contact(self, kind: str, call: DemoCall, agent_id: str, stamp) -> None:
        from callsure.v1 import contact_pb2

        event = contact_pb2.ContactEvent(
            contact_id=f"log-{call.line}",
            type=CONTACT_TYPES[kind],
            event_time=stamp,
            queue=call.group,
            customer_id=call.customer_id,
            phone_number=call.phone_number,
            agent=f"agents/{agent_id}" if agent_id else "",
        )
        self._contacts.ReportContactEvent(
            contact_pb2.ReportContactEventRequest(event=event), timeout=5
        )


def _contact_types() -> dict[str, int]:
    from callsure.v1 import contact_pb2

    return {
        "arrived": contact_pb2.CONTACT_EVENT_TYPE_ARRIVED,
        "queued": contact_pb2.CONTACT_EVENT_TYPE_QUEUED,
        "answered": contact_pb2.CONTACT_EVENT_TYPE_ANSWERED,
        "abandoned": contact_pb2.CONTACT_EVENT_TYPE_ABANDONED,
        "ended": contact_pb2.CONTACT_EVENT_TYPE_ENDED,
    }


CONTACT_TYPES = _contact_types()


class IvrDialer:
    """Send callers to the gateway's IVR from the caller phone banks."""

    def __init__(self, banks, gateway_addresses, zone: str, tally):
        self.banks = banks
        self.addresses = gateway_addresses
        self.zone = zone
        self.tally = tally
        self.on_ended = None
        self._generator = random.Random(0)
        self._serial = 0

    def seed(self, seed: int) -> None:
        self._generator = random.Random(seed + 1)

    def dial(self, call: DemoCall) -> bool:
        if self.tally.ivr_lines_in_use() >= IVR_LINES:
            return False
        choice = self._generator.choices(
            [key for key, _ in CHOICES], [share for _, share in CHOICES]
        )[0]
        plan: list[list] = []
        if choice in ("1", "3"):
            plan.append([OFFER_KEY_S, choice])
        elif choice == "2":
            from zoneinfo import ZoneInfo

            # The next minute in the center's zone, because keyed times
            # have minute resolution. If the engine finds it infeasible,
            # the caller takes the first free agent instead.
            wanted = datetime.now(ZoneInfo(self.zone)) + timedelta(minutes=1)
            plan += [
                [OFFER_KEY_S, "2"],
                [TIME_KEYS_S, wanted.strftime("%H%M")],
                [FALLBACK_KEY_S, "1"],
            ]
        self._serial += 1
        bank = self.banks[self._serial % len(self.banks)]
        address = self.addresses[self._serial % len(self.addresses)]
        self.tally.on_ivr_dialed(call, choice)
        bank.dial(
            f"sip:{IVR_URI_USER}@{address}",
            user=call.phone_number,
            dtmf_plan=plan,
            hangup_after_s=CALLER_HANGUP_S if choice else OFFER_KEY_S + 1.0,
        )
        return True


class Workers:
    """The order, outcome and journal threads of the module docstring."""

    def __init__(self, stack, gateway, outcomes: queue.Queue, tally):
        self.stack = stack
        self.gateway = gateway
        self.outcomes = outcomes
        self.tally = tally
        self.coordinator = stack.actors.coordinator
        self._running = True
        self._threads = [
            threading.Thread(target=self._loop, args=(f,), name=f.__name__, daemon=True)
            for f in (self._take_orders, self._report_outcomes, self._read_journal)
        ]
        self._after_seq = 0
        self._waiting_orders: collections.deque = collections.deque()
        self._lines_lock = threading.Lock()
        # Attempt id -> when it was handed to the gateway.
        self._in_flight: dict[str, float] = {}

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._running = False
        self.outcomes.put(None)
        for thread in self._threads:
            thread.join(10.0)

    def _loop(self, step) -> None:
        while self._running:
            try:
                step()
            except Exception:  # noqa: BLE001 - keep the demo's plumbing alive
                logger.exception("demo: %s failed; continuing", step.__name__)
                time.sleep(0.5)

    def _take_orders(self) -> None:
        from callsure.actors.runtime import ray

        self._waiting_orders.extend(
            ray.get(self.stack.relay.take.remote(0.2), timeout=30)
        )
        while self._waiting_orders:
            with self._lines_lock:
                self._forget_stale_lines()
                if len(self._in_flight) >= CUSTOMER_LINES:
                    return
            order = self._waiting_orders.popleft()
            try:
                ray.get(
                    self.coordinator.start_dialing.remote(
                        order.attempt_id, DIALER_NAME
                    ),
                    timeout=30,
                )
            except CallsureError as error:
                # A lease that expired while the order waited for a line:
                # the coordinator has finalised the attempt already.
                logger.warning(
                    "attempt %s: not dialed, claim failed: %s", order.attempt_id, error
                )
                continue
            with self._lines_lock:
                self._in_flight[order.attempt_id] = time.monotonic()
            self.tally.on_order(order)
            self.gateway.dial(order)

    def on_call_ended(self, attempt_id: str) -> None:
        """Free the customer line of a callback whose legs have both ended."""
        with self._lines_lock:
            self._in_flight.pop(attempt_id, None)

    def _forget_stale_lines(self) -> None:
        # A line whose end was never reported (a lost event) is counted
        # free again after STALE_LINE_S.
        now = time.monotonic()
        for attempt_id, since in list(self._in_flight.items()):
            if now - since > STALE_LINE_S:
                logger.warning("attempt %s: no end reported, line freed", attempt_id)
                del self._in_flight[attempt_id]

    def _report_outcomes(self) -> None:
        from callsure.actors.runtime import ray

        try:
            report = self.outcomes.get(timeout=0.5)
        except queue.Empty:
            return
        if report is None:
            return
        self.tally.on_outcome(report)
        if report.outcome is Outcome.NOT_DIALED:
            # The gateway never placed it, so no call.ended follows.
            self.on_call_ended(report.attempt_id)
        ray.get(
            self.coordinator.report_outcome.remote(
                report.attempt_id,
                report.outcome,
                sit_code=report.sit_code,
                detail=report.detail,
                agent_id=report.agent_id,
            ),
            timeout=30,
        )

    def _read_journal(self) -> None:
        from callsure.actors.runtime import ray

        events = ray.get(
            self.coordinator.read_events.remote(self._after_seq, 500), timeout=30
        )
        for event in events:
            self._after_seq = event.seq
            self.tally.on_journal_event(event)
        if len(events) < 500:
            time.sleep(0.3)

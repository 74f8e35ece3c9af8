"""The contact-center simulation: one day of calls in virtual time.

The modelled system
-------------------
One agent queue (the bank's log mixes service types in one pool of about
eight agents). Calls reach the queue at the times of the log. A call that
finds an idle agent is answered at once; the others wait in the queue,
ordered by entry time, where a high-priority caller (priority 2) is
credited ``PRIORITY_CREDIT_S`` of waiting as the bank's switch did. A
waiting caller abandons when their patience runs out (see ``workload``).
Agents work the shifts reconstructed from the log; an agent whose shift
ends finishes the call in progress and leaves. Service takes the call's
logged service time (a draw from the day's services when the log has
none).

Redials follow the log: a call that redials an abandoned one arrives only
if the call it redials ended unserved in the simulation too. A customer
who abandons in the simulation although the log had them served (or had
no redial) redials with the log's same-day redial share, after a delay
drawn from the log's redial delays.

With callbacks (``Scenario.CALLBACKS``), a caller who would wait is
offered a callback when the predicted wait exceeds the threshold and the
engine can keep a promise before the day ends, and offered again while
they keep waiting (``ReplayOptions.reoffer_s``). A caller who accepts
leaves the queue; ``CallbackScheduler.create`` stores the promise with
the caller's original entry time, and ``CallbackDesk`` dials it when the
scheduler releases it. An identified caller who abandons gets a promise
without being asked (``ReplayOptions.abandon_callbacks``). A customer
whose callback is pending does not redial, except with a small
probability.

Mechanics
---------
A heap of timed events; the ``VirtualClock`` jumps from one event to the
next. Ties break by insertion order, so a run is deterministic given the
seed. Every queue change is fed to the predictor as it happens, so the
predictor never sees the future.
"""

from __future__ import annotations

import enum
import heapq
import itertools
import logging
from collections import deque
from dataclasses import dataclass, field

from callsure.engine.clock import VirtualClock
from callsure.engine.prediction.state import (
    JOIN,
    LEAVE,
    PRIORITY_CREDIT_S,
    SERVICE_END,
    SERVICE_START,
    QueueEvent,
)
from callsure.engine.simulation.events import CLOSING_GRACE_S, Kind, epoch, utc
from callsure.engine.simulation.options import ReplayOptions
from callsure.engine.simulation.records import CallResult, DayTrace
from callsure.engine.simulation.workload import (
    STREAM_PATIENCE,
    STREAM_REDIAL,
    STREAM_SERVICE,
    CallInput,
    DayWorkload,
    draw,
)

logger = logging.getLogger(__name__)

QUEUE = "bank"
HIGH_PRIORITY = 2
# Synthetic redials of a synthetic redial stop at this depth; the log's
# same-day redial share would otherwise allow long chains.
MAX_REDIAL_DEPTH = 4
TRACE_STEP_S = 60.0
FIRST_CALL_ID = 100_000_000


class Scenario(enum.Enum):
    """Treatment of callers who would wait, the one difference between runs."""

    BASELINE = "baseline"
    """Callers wait or abandon; no callback is offered."""
    CALLBACKS = "callbacks"
    """Callers predicted to wait long are offered a callback."""


@dataclass
class Call:
    """A call in the simulation: one from the log or a synthetic redial."""

    call_id: int
    source: CallInput
    arrival: float
    patience_s: float
    service_s: float
    synthetic: bool = False
    depth: int = 0
    redial: bool = False
    result: CallResult | None = None

    @property
    def customer(self) -> str:
        return self.source.customer

    @property
    def priority(self) -> int:
        return self.source.priority

    @property
    def key(self) -> float:
        credit = PRIORITY_CREDIT_S if self.priority >= HIGH_PRIORITY else 0.0
        return self.arrival - credit


@dataclass
class Agent:
    name: str
    on_duty: bool = False
    busy_with: object | None = None
    busy_since: float = 0.0
    busy_s: float = 0.0
    duty_since: float = 0.0
    duty_s: float = 0.0


@dataclass
class CustomerState:
    """Contact state of one customer within the simulated day."""

    unserved_since: float | None = None
    """Arrival of the first call of an unserved streak (None when served)."""
    redialed: bool = False
    open_callback: str | None = None
    last_unserved: bool = False
    """Whether the customer's last contact ended without service."""


@dataclass(order=True)
class _Event:
    time: float
    seq: int
    kind: Kind = field(compare=False)
    data: object = field(compare=False, default=None)


class ContactCenterSimulation:
    """A discrete-event simulation of one day; see the module docstring.

    Parameters
    ----------
    workload : DayWorkload
    scenario : Scenario
    predictor : WaitPredictor
        The engine's predictor, used by the desk's offers and promises.
    observe : callable
        Function that feeds one ``QueueEvent`` to ``predictor``.
    options : ReplayOptions
    desk : CallbackDesk or None
        Required for ``Scenario.CALLBACKS``.
    clock : VirtualClock or None
    """

    def __init__(
        self,
        workload: DayWorkload,
        scenario: Scenario,
        *,
        predictor,
        observe,
        options: ReplayOptions,
        desk=None,
        clock: VirtualClock | None = None,
    ):
        if scenario is Scenario.CALLBACKS and desk is None:
            raise ValueError(
                "desk is missing: pass a CallbackDesk for Scenario.CALLBACKS"
            )
        self.workload = workload
        self.scenario = scenario
        self.predictor = predictor
        self.observe = observe
        self.options = options
        self.desk = desk

        first = min(c.arrival for c in workload.calls)
        start = min([first, *(s.start for s in workload.shifts)])
        self.clock = clock or VirtualClock(start)
        self.now = epoch(self.clock.now())
        self.end_time = max(epoch(s.end) for s in workload.shifts) + CLOSING_GRACE_S
        self._heap: list[_Event] = []
        self._seq = itertools.count()
        # Above the log's line numbers, which key the warm-up's events in
        # the predictor's queue state.
        self._call_ids = itertools.count(FIRST_CALL_ID)

        self.agents = {s.agent: Agent(s.agent) for s in workload.shifts}
        self.idle: deque[str] = deque()
        self.waiting: dict[int, Call] = {}
        self.customers: dict[str, CustomerState] = {}
        self.results: list[CallResult] = []
        self.redial_times: list[float] = []
        """Seconds from the first unserved call to service, per customer
        who redialed before being served."""
        self.trace = DayTrace()
        self._arrivals_since_trace = 0
        self._by_line: dict[int, Call] = {}
        self._redialed_lines = {
            c.redial_of for c in workload.calls if c.redial_of is not None
        }
        if desk is not None:
            desk.attach(self)

    # Scheduling

    def schedule(self, time: float, kind: Kind, data=None) -> None:
        heapq.heappush(self._heap, _Event(time, next(self._seq), kind, data))

    def run(self) -> ContactCenterSimulation:
        """Run the day to its end and return ``self``."""
        for call_input in self.workload.calls:
            self.schedule(epoch(call_input.arrival), Kind.ARRIVE, call_input)
        for shift in self.workload.shifts:
            self.schedule(epoch(shift.start), Kind.SHIFT_START, shift.agent)
            self.schedule(epoch(shift.end), Kind.SHIFT_END, shift.agent)
        self.schedule(self.now, Kind.TRACE)
        handlers = {
            Kind.ARRIVE: self._on_arrive,
            Kind.ABANDON: self._on_abandon,
            Kind.SERVICE_END: self._on_service_end,
            Kind.SHIFT_START: self._on_shift_start,
            Kind.SHIFT_END: self._on_shift_end,
            Kind.TRACE: self._on_trace,
            Kind.REDIAL: self._on_redial,
            Kind.REOFFER: self._on_reoffer,
        }
        if self.desk is not None:
            handlers[Kind.POLL] = self.desk.on_poll
            handlers[Kind.DIAL_DONE] = self.desk.on_dial_done
            handlers[Kind.CALLBACK_GIVE_UP] = self.desk.on_give_up
        while self._heap and self._heap[0].time <= self.end_time:
            event = heapq.heappop(self._heap)
            if event.time > self.now:
                self.now = event.time
                self.clock.set(utc(event.time))
            handlers[event.kind](event.data)
        self._close()
        return self

    def _close(self) -> None:
        for call in list(self.waiting.values()):
            call.result.outcome = "waiting"
        for agent in self.agents.values():
            if agent.busy_with is not None:
                agent.busy_s += self.end_time - agent.busy_since
            if agent.on_duty:
                agent.duty_s += self.end_time - agent.duty_since
        if self.desk is not None:
            self.desk.close()

    def feed(self, kind: int, call_id: int, **values) -> None:
        """Feed one queue event to the predictor, at the current time."""
        self.observe(QueueEvent(self.now, kind, call_id, **values))

    # Calls

    def _on_arrive(self, source: CallInput) -> None:
        state = self.customers.setdefault(source.customer, CustomerState())
        redial = False
        if source.redial_of is not None:
            previous = self._by_line.get(source.redial_of)
            if previous is None or not state.last_unserved:
                return
            if state.open_callback is not None and not self._redials_anyway(source):
                return
            redial = True
        call = Call(
            call_id=next(self._call_ids),
            source=source,
            arrival=self.now,
            patience_s=source.patience_s,
            service_s=source.service_s,
            redial=redial,
        )
        self._by_line[source.line] = call
        self._admit(call, state)

    def _redials_anyway(self, source: CallInput, depth: int = 0) -> bool:
        # Keys 2 and up of this stream belong to synthetic redials.
        rng = draw(self.options.seed, STREAM_REDIAL, source.line, 1, depth)
        return bool(rng.random() < self.options.redial_while_pending)

    def _admit(self, call: Call, state: CustomerState) -> None:
        self._arrivals_since_trace += 1
        if call.redial:
            state.redialed = True
        if state.unserved_since is None:
            state.unserved_since = call.arrival
        call.result = CallResult(
            call_id=call.call_id,
            line=call.source.line,
            customer=call.customer,
            arrival=call.arrival,
            priority=call.priority,
            redial=call.redial,
            synthetic=call.synthetic,
        )
        self.results.append(call.result)
        if self.desk is not None:
            self.desk.arrived(call)
        self.feed(
            JOIN, call.call_id, priority=call.priority, call_type=self._type(call)
        )
        self.waiting[call.call_id] = call
        if self.idle:
            self.dispatch()
            if call.call_id not in self.waiting:
                return
        if self.desk is not None and self._offer(call, state, 1):
            return
        self.schedule(call.arrival + call.patience_s, Kind.ABANDON, call.call_id)

    def _offer(self, call: Call, state: CustomerState, number: int) -> bool:
        """Offer a callback; on acceptance the caller leaves the queue."""
        if not self.desk.offer(call, state, number):
            reoffer_s = self.options.reoffer_s
            if reoffer_s > 0 and number < self.options.max_offers:
                self.schedule(self.now + reoffer_s, Kind.REOFFER, (call, number + 1))
            return False
        del self.waiting[call.call_id]
        call.result.outcome = "callback"
        call.result.left_at = self.now
        state.last_unserved = True
        # Not an abandonment: the caller's wait goes on in the promise, so
        # the predictor's patience estimate must not count it.
        self.feed(LEAVE, call.call_id, served=True)
        return True

    def _on_reoffer(self, data: tuple[Call, int]) -> None:
        call, number = data
        if call.call_id in self.waiting:
            self._offer(call, self.customers[call.customer], number)

    def _type(self, call: Call) -> str:
        return call.source.call_type

    def _on_abandon(self, call_id: int) -> None:
        call = self.waiting.pop(call_id, None)
        if call is None:
            return
        call.result.outcome = "abandoned"
        call.result.left_at = self.now
        self.feed(LEAVE, call_id, served=False)
        state = self.customers[call.customer]
        state.last_unserved = True
        if self.desk is not None and self.desk.call_back_abandoner(call, state):
            call.result.called_back = True
            return
        self._maybe_synthetic_redial(call)

    def _maybe_synthetic_redial(self, call: Call) -> None:
        """Redial an abandoner the log does not show redialing."""
        if not call.source.identified or call.depth >= MAX_REDIAL_DEPTH:
            return
        if not call.synthetic and call.source.line in self._redialed_lines:
            return
        seed = self.options.seed
        rng = draw(seed, STREAM_REDIAL, call.source.line, call.depth + 2)
        if rng.random() >= self.workload.redial_probability:
            return
        delays = self.workload.redial_delays_s
        delay = float(delays[rng.integers(delays.size)])
        source = call.source
        synthetic = CallInput(
            line=source.line,
            customer=source.customer,
            identified=True,
            arrival=utc(self.now + delay),
            priority=source.priority,
            call_type=source.call_type,
            service_s=self.workload.draw_service_s(
                source.call_type,
                draw(seed, STREAM_SERVICE, source.line, call.depth + 1),
            ),
            patience_s=float(
                draw(seed, STREAM_PATIENCE, source.line, call.depth + 1).exponential(
                    self.workload.mean_patience_s
                )
            ),
            log_outcome="",
        )
        self.schedule(self.now + delay, Kind.REDIAL, (synthetic, call))

    def _on_redial(self, data: tuple[CallInput, Call]) -> None:
        source, parent = data
        state = self.customers[source.customer]
        if not state.last_unserved:
            return
        depth = parent.depth + 1
        if state.open_callback is not None and not self._redials_anyway(source, depth):
            return
        call = Call(
            call_id=next(self._call_ids),
            source=source,
            arrival=self.now,
            patience_s=source.patience_s,
            service_s=source.service_s,
            synthetic=True,
            depth=parent.depth + 1,
            redial=True,
        )
        self._admit(call, state)

    # Agents

    def _on_shift_start(self, name: str) -> None:
        agent = self.agents[name]
        if agent.on_duty:
            return
        agent.on_duty = True
        agent.duty_since = self.now
        # An agent taken for a callback dial is neither busy nor idle; the
        # desk hands them back when the dial ends.
        reserved = self.desk is not None and name in self.desk.reserved.values()
        if agent.busy_with is None and not reserved:
            self.idle.append(name)
            self.dispatch()

    def _on_shift_end(self, name: str) -> None:
        agent = self.agents[name]
        if not agent.on_duty:
            return
        agent.on_duty = False
        agent.duty_s += self.now - agent.duty_since
        if name in self.idle:
            self.idle.remove(name)

    def _on_service_end(self, name: str) -> None:
        agent = self.agents[name]
        work = agent.busy_with
        agent.busy_with = None
        agent.busy_s += self.now - agent.busy_since
        self.feed(SERVICE_END, work.call_id, agent=name)
        if agent.on_duty:
            self.idle.append(name)
            self.dispatch()

    def dispatch(self) -> None:
        """Give idle agents work: answered callbacks first, then due
        agent-first callbacks, then the queue."""
        while self.idle:
            work = self.desk.next_party() if self.desk is not None else None
            if work is None:
                if self.desk is not None and self.desk.claim_idle_agent():
                    continue
                if not self.waiting:
                    return
                call = min(self.waiting.values(), key=lambda c: (c.key, c.call_id))
                del self.waiting[call.call_id]
                self._answer(call, self.idle.popleft())
            else:
                self.desk.connect(work, self.idle.popleft())

    def _answer(self, call: Call, name: str) -> None:
        self.feed(LEAVE, call.call_id, served=True)
        self.start_service(name, call, call.call_id, call.service_s, self._type(call))
        call.result.outcome = "served"
        call.result.left_at = self.now
        call.result.agent = name
        self.served(call.customer)

    def start_service(
        self, name: str, work, call_id: int, service_s: float, call_type: str
    ) -> None:
        """Occupy agent ``name`` with ``work`` for ``service_s`` seconds."""
        agent = self.agents[name]
        agent.busy_with = work
        agent.busy_since = self.now
        self.feed(SERVICE_START, call_id, agent=name, call_type=call_type)
        self.schedule(self.now + service_s, Kind.SERVICE_END, name)

    def served(self, customer: str) -> None:
        """Record that ``customer`` reached an agent now."""
        state = self.customers[customer]
        if state.redialed and state.unserved_since is not None:
            self.redial_times.append(self.now - state.unserved_since)
        state.unserved_since = None
        state.redialed = False
        state.last_unserved = False
        if self.desk is not None:
            self.desk.customer_served(customer, state)

    def oldest_waiting(self) -> float | None:
        """Entry time of the longest-waiting caller in the queue."""
        if not self.waiting:
            return None
        return min(call.arrival for call in self.waiting.values())

    # Trace

    def _on_trace(self, _data) -> None:
        busy = sum(1 for a in self.agents.values() if a.busy_with is not None)
        on_duty = sum(1 for a in self.agents.values() if a.on_duty)
        pending, due = self.desk.promise_counts() if self.desk else (0, 0)
        self.trace.add(
            self.now,
            self._arrivals_since_trace,
            len(self.waiting),
            pending,
            due,
            busy,
            on_duty,
        )
        self._arrivals_since_trace = 0
        if self.now + TRACE_STEP_S <= self.end_time:
            self.schedule(self.now + TRACE_STEP_S, Kind.TRACE)

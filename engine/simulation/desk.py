"""Callbacks in the simulation, kept through the engine's real scheduler.

``CallbackDesk`` sits between the simulated queue and the
``CallbackScheduler``: it offers callbacks to waiting callers, stores the
accepted ones with ``create`` (mode ``PREDICTED``, the caller's original
queue entry time), calls ``due`` for dial orders with the entry time of
the longest-waiting inbound caller, claims each order with
``start_dialing``, plays the dial (answer, busy, no answer, machine, drawn
with the run's seed) and reports every outcome with ``report_outcome``,
so retries follow the scheduler's retry policy.

Each order is dialed in its ``dial_mode``. ``AGENT_FIRST`` takes an idle
agent out of the pool before the dial and connects a customer who
answers to that agent at once; the agent goes back to the pool when the
dial fails. Such orders are asked for whenever an agent turns idle while
a promise is due, before the agent takes the next inbound caller, so a
due callback gets the first free agent unless an inbound caller who
entered earlier still waits. In ``CUSTOMER_FIRST`` a customer who
answered waits at the head of the queue, because every inbound caller
still waiting entered later, and the next free agent takes them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from callsure.engine.callbacks import (
    CallbackMode,
    CallbackRequest,
    DialMode,
    Outcome,
)
from callsure.engine.customers import ContactEvent, ContactKind, CustomerBook
from callsure.engine.exceptions import InfeasibleTimeError
from callsure.engine.simulation.events import CLOSING_GRACE_S, Kind, utc
from callsure.engine.simulation.records import CallbackResult
from callsure.engine.simulation.workload import STREAM_ACCEPT, STREAM_DIAL, draw

logger = logging.getLogger(__name__)

OWNER = "replay-dialer"
ANSWERED = "answered"
# Seconds from the start of a dial to its result, per result; an answer
# takes a draw between the two ring times.
RING_S = (5.0, 20.0)
RESULT_DELAY_S = {Outcome.BUSY: 5.0, Outcome.NO_ANSWER: 30.0, Outcome.MACHINE: 20.0}
# How a dial that the customer does not answer ends. An estimate for
# mobile numbers; the log has no outbound calls to measure it on.
UNANSWERED_MIX = ((Outcome.BUSY, 0.3), (Outcome.NO_ANSWER, 0.5), (Outcome.MACHINE, 0.2))


@dataclass
class Party:
    """A customer who answered a callback and waits for an agent."""

    callback_id: str
    attempt_id: str
    call_id: int
    entry_time: float
    answered_at: float


class CallbackDesk:
    """Offers and keeps callbacks for a ``ContactCenterSimulation``.

    Parameters
    ----------
    scheduler : CallbackScheduler
        The engine's scheduler, on its own store and the run's clock.
    options : ReplayOptions
    queue : str
        Queue name used with the scheduler and the predictor.
    """

    def __init__(self, scheduler, options, queue: str, take_up=None):
        self.scheduler = scheduler
        self.take_up = take_up
        self.options = options
        self.queue = queue
        self.sim = None
        # Repeat callers and grades under the scheduler's stored rules.
        self.book = CustomerBook(scheduler.grade_rules, scheduler.repeat_caller_rule)
        self.results: dict[str, CallbackResult] = {}
        self.calls: dict[str, object] = {}
        self.state: dict[str, str] = {}
        self.not_before: dict[str, float] = {}
        self.line: list[Party] = []
        self.reached: set[str] = set()
        self.offered = 0
        self.declined = 0
        self.abandon_callbacks = 0
        self.not_offered_infeasible = 0
        self.not_offered_closing = 0
        # Calls of due() that returned more orders than free agents.
        self.capacity_violations = 0
        # Agents taken for an agent-first dial, by attempt id.
        self.reserved: dict[str, str] = {}
        self.released_overtaking = 0
        self._polls: set[float] = set()
        self._closing = 0.0

    def attach(self, sim) -> None:
        self.sim = sim
        self._closing = sim.end_time - CLOSING_GRACE_S

    # Offers

    def arrived(self, call) -> None:
        """Record a call's arrival in the customer book."""
        if call.source.identified:
            self.book.record(
                ContactEvent(
                    call.customer,
                    ContactKind.ARRIVED,
                    self.scheduler.clock.now(),
                    self.queue,
                    call_id=str(call.call_id),
                )
            )

    def offer(self, call, customer_state, number: int = 1) -> bool:
        """Offer ``call`` a callback (``number``: 1 on arrival, then each
        re-offer); return True when it was accepted and stored."""
        if self.take_up is not None and number == 1:
            self.take_up.arrival(call.arrival)
        accepted = self._offer(call, customer_state, number)
        if accepted and self.take_up is not None:
            self.take_up.accepted(self.sim.now)
        return accepted

    def _offer(
        self, call, customer_state, number: int, *, abandoned: bool = False
    ) -> bool:
        if customer_state.open_callback is not None:
            return False
        now = self.scheduler.clock.now()
        # The switch's view: inbound callers ahead. The planner adds the
        # open promises that entered earlier (answered customers waiting
        # for an agent among them), and so does the offer's estimate.
        ahead = sum(
            1
            for other in self.sim.waiting.values()
            if other.call_id != call.call_id and other.key <= call.key
        )
        promises_ahead = self.scheduler.store.count_open_before(
            self.queue, utc(call.arrival)
        )
        estimate = self.scheduler.predictor.estimate_wait(
            self.queue,
            ahead + promises_ahead,
            now,
            priority=call.priority,
            committed=promises_ahead,
        )
        predicted_s = estimate.quantiles_s.get(
            self.options.offer_quantile, estimate.mean_s
        )
        status = self.book.status(call.customer, now)
        # The repeat-caller rule may ask for an offer whatever the wait.
        unconditional = abandoned or status.offer_callback
        if not unconditional and not predicted_s > self.options.threshold_s:
            return False
        request = CallbackRequest(
            request_id=f"call-{call.call_id}-{'abandoned' if abandoned else 'offer'}",
            customer_id=call.customer,
            queue=self.queue,
            phone_number=_phone_number(call),
            mode=CallbackMode.PREDICTED,
            entry_time=utc(call.arrival),
            queue_position=ahead,
            grade=status.grade.value,
            # The log's priority, which orders the simulated queue; the
            # book's routing priority uses another scale (grades, boosts).
            priority=call.priority,
        )
        try:
            plan = self.scheduler.planner.plan(request, now)
        except InfeasibleTimeError:
            self.not_offered_infeasible += 1
            return False
        window_end = plan.promised_time + timedelta(seconds=self.options.window_s)
        if window_end.timestamp() > self._closing:
            self.not_offered_closing += 1
            return False
        if abandoned:
            self.abandon_callbacks += 1
        else:
            self.offered += 1
            rng = draw(
                self.options.seed, STREAM_ACCEPT, call.source.line, call.depth, number
            )
            if rng.random() >= self.options.accept_probability:
                self.declined += 1
                return False

        callback = self.scheduler.create(request)
        callback_id = callback.callback_id
        promised = callback.promised_time.timestamp()
        self.results[callback_id] = CallbackResult(
            callback_id=callback_id,
            customer=call.customer,
            call_id=call.call_id,
            entry_time=call.arrival,
            created_at=callback.created_at.timestamp(),
            promised_time=promised,
            window_end=promised + self.options.window_s,
        )
        self.calls[callback_id] = call
        self.state[callback_id] = callback.state.value
        self.not_before[callback_id] = callback.not_before.timestamp()
        customer_state.open_callback = callback_id
        self._poll_at(callback.not_before.timestamp())
        return True

    def call_back_abandoner(self, call, customer_state) -> bool:
        """Promise a callback to an identified caller who abandoned.

        The promise keeps the caller's place like an accepted offer; the
        customer may still not answer the dial.
        """
        if not self.options.abandon_callbacks or not call.source.identified:
            return False
        return self._offer(call, customer_state, 0, abandoned=True)

    # Releases and dials

    def _poll_at(self, when: float) -> None:
        if when in self._polls:
            return
        self._polls.add(when)
        self.sim.schedule(when, Kind.POLL)

    def on_poll(self, _data=None) -> None:
        """Ask the scheduler for dial orders and start each dial."""
        sim = self.sim
        self._polls.discard(sim.now)
        self._release()
        if any(
            state == "pending" and self.not_before[callback_id] <= sim.now
            for callback_id, state in self.state.items()
        ):
            self._poll_at(sim.now + self.options.poll_s)

    def claim_idle_agent(self) -> bool:
        """Release due callbacks to the idle agents before inbound callers
        take them; return True when an agent was taken.

        Called by the simulation whenever it has an idle agent. Only
        agent-first dials take agents here; the scheduler holds a callback
        that entered after the longest-waiting inbound caller.
        """
        if not self.options.agent_first:
            return False
        now = self.sim.now
        if not any(
            state == "pending" and self.not_before[callback_id] <= now
            for callback_id, state in self.state.items()
        ):
            return False
        idle = len(self.sim.idle)
        self._release()
        return len(self.sim.idle) < idle

    def _release(self) -> None:
        sim = self.sim
        now = self.scheduler.clock.now()
        oldest = sim.oldest_waiting()
        free = self.free_agents()
        orders = self.scheduler.due(
            now,
            free_agents={self.queue: free},
            oldest_waiting=None if oldest is None else {self.queue: utc(oldest)},
        )
        if len(orders) > free:
            self.capacity_violations += 1
        for order in orders:
            callback_id = order.callback_id
            result = self.results[callback_id]
            if sim.now < self.not_before[callback_id]:
                result.dialed_before_due += 1
            if oldest is not None and order.entry_time.timestamp() > oldest:
                self.released_overtaking += 1
            if order.attempt_number == 1:
                result.first_dial_at = sim.now
            self.state[callback_id] = "dialing"
            if order.dial_mode is DialMode.AGENT_FIRST:
                self.reserved[order.attempt_id] = sim.idle.popleft()
            self.scheduler.start_dialing(order.attempt_id, OWNER)
            outcome, delay_s = self._dial_result(order)
            sim.schedule(sim.now + delay_s, Kind.DIAL_DONE, (order, outcome))

    def free_agents(self) -> int:
        """Count the agents that can take one more callback, for ``due``.

        Agent-first: the idle agents, each of whom can be taken for one
        dial. Customer-first: the agents on duty less the callbacks already
        dialing or waiting for an agent, so each callback in flight has an
        agent of its own to wait for. Only counts are used, no service end
        times, as an agent pool would know them.
        """
        if self.options.agent_first:
            return len(self.sim.idle)
        on_duty = sum(1 for agent in self.sim.agents.values() if agent.on_duty)
        in_flight = sum(1 for state in self.state.values() if state == "dialing")
        return max(0, on_duty - in_flight)

    def _dial_result(self, order) -> tuple[str | Outcome, float]:
        call = self.calls[order.callback_id]
        rng = draw(
            self.options.seed, STREAM_DIAL, call.source.line, order.attempt_number
        )
        if rng.random() < self.options.answer_probability:
            return ANSWERED, float(rng.uniform(*RING_S))
        pick = rng.random()
        for outcome, share in UNANSWERED_MIX:
            if pick < share:
                return outcome, RESULT_DELAY_S[outcome]
            pick -= share
        return Outcome.NO_ANSWER, RESULT_DELAY_S[Outcome.NO_ANSWER]

    def on_dial_done(self, data) -> None:
        """Apply the result of a dial: a customer on the line, or an outcome."""
        order, outcome = data
        result = self.results[order.callback_id]
        if order.attempt_number == 1:
            result.first_answered = outcome == ANSWERED
        if outcome == ANSWERED and order.callback_id in self.reached:
            # The customer is talking to an agent on a call of their own.
            outcome = Outcome.BUSY
        agent = self.reserved.pop(order.attempt_id, None)
        if outcome != ANSWERED:
            self._report(order.attempt_id, outcome)
            if agent is not None:
                self._free(agent)
            return
        sim = self.sim
        party = Party(
            callback_id=order.callback_id,
            attempt_id=order.attempt_id,
            call_id=result.call_id,
            entry_time=result.entry_time,
            answered_at=sim.now,
        )
        if agent is not None:
            # An agent whose shift ended during the dial still takes the
            # call and leaves after it, as the simulation's agents do.
            self.connect(party, agent)
            return
        self.line.append(party)
        sim.schedule(
            sim.now + self.options.callback_patience_s,
            Kind.CALLBACK_GIVE_UP,
            party,
        )
        sim.dispatch()

    def _free(self, agent: str) -> None:
        """Put a reserved agent back in the pool after a failed dial."""
        if self.sim.agents[agent].on_duty:
            self.sim.idle.append(agent)
            self.sim.dispatch()

    def on_give_up(self, party: Party) -> None:
        if party in self.line:
            self.line.remove(party)
            self._report(party.attempt_id, Outcome.CUSTOMER_HUNG_UP)

    def next_party(self) -> Party | None:
        """Return the answered customer who entered the queue first, or None."""
        if not self.line:
            return None
        return min(self.line, key=lambda party: party.entry_time)

    def connect(self, party: Party, agent: str) -> None:
        """Bridge ``party`` to ``agent`` and report the connection."""
        sim = self.sim
        if party in self.line:
            self.line.remove(party)
        result = self.results[party.callback_id]
        result.agent_at = sim.now
        result.overtook = sum(
            1 for call in sim.waiting.values() if call.arrival < party.entry_time
        )
        self._report(party.attempt_id, Outcome.CONNECTED, agent)
        call = self.calls[party.callback_id]
        sim.start_service(
            agent, party, party.call_id, call.service_s, call.source.call_type
        )
        sim.served(call.customer)

    def _report(self, attempt_id: str, outcome: Outcome, agent: str | None = None):
        decided = self.scheduler.report_outcome(attempt_id, outcome, agent_id=agent)
        self._mirror(decided.callback)
        if decided.next_attempt_at is not None:
            self._poll_at(decided.next_attempt_at.timestamp())

    def _mirror(self, callback) -> None:
        callback_id = callback.callback_id
        result = self.results[callback_id]
        result.state = callback.state.value
        result.attempts = callback.attempts
        self.state[callback_id] = callback.state.value
        self.not_before[callback_id] = callback.not_before.timestamp()
        if callback.state.is_final:
            state = self.sim.customers[result.customer]
            if state.open_callback == callback_id:
                state.open_callback = None

    def customer_served(self, customer: str, customer_state) -> None:
        """Drop the open promise of a customer who reached an agent otherwise."""
        self.book.record(
            ContactEvent(
                customer,
                ContactKind.ANSWERED,
                self.scheduler.clock.now(),
                self.queue,
            )
        )
        callback_id = customer_state.open_callback
        if callback_id is None:
            return
        self.reached.add(callback_id)
        dropped = self.scheduler.customer_reached_agent(
            customer, self.queue, self.scheduler.clock.now()
        )
        for callback in dropped:
            if callback.callback_id in self.results:
                self._mirror(callback)

    # Reporting

    def promise_counts(self) -> tuple[int, int]:
        """Count promises pending before their time, and due or dialing, now."""
        now = self.sim.now
        pending = due = 0
        for callback_id, state in self.state.items():
            if state == "pending":
                if self.not_before[callback_id] > now:
                    pending += 1
                else:
                    due += 1
            elif state == "dialing":
                due += 1
        return pending, due

    def close(self) -> None:
        """Leave every unfinished promise in its last known state."""
        for callback_id, state in self.state.items():
            self.results[callback_id].state = state


def _phone_number(call) -> str:
    # The log has no numbers; a stable made-up Israeli mobile number per
    # customer lets the scheduler validate and merge requests.
    digits = "".join(ch for ch in call.customer if ch.isdigit()) or "0"
    return f"+97250{int(digits) % 10**7:07d}"

"""The contact center around callsure: a switch queue and its agents.

``Desk`` plays the part of the automatic call distributor and the CTI in
compressed real time. Callers of the log arrive, wait in their group's
queue and are answered by the next free agent, or hang up when their
patience (the log's queue time) runs out. Callers who would wait are
sent to the gateway's IVR over SIP while lines are free; a caller who
accepts a callback leaves the queue. The desk reports every agent state
to callsure (``AgentService.ReportAgentState``), so the coordinator
releases callbacks only when an agent is free.

Agents and callbacks: the desk reserves free agents for callbacks
whose place in the queue has come and for callbacks being dialed, each
for a bounded time (see ``callsure.actors.demo.reservations``). The
agent leg of a callback rings the agent phone of the group (or of the
VIP's dedicated agent), and the desk then marks an agent busy until the
call ends.

The report accounts for every caller: answered, abandoned, left with a
promise, or still waiting when the run ends.

Every method runs on the desk's own thread except the ``on_*`` entry
points, which only queue work for it.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass, field

from callsure.actors.demo.reservations import Reservations
from callsure.actors.demo.workload import DemoCall

logger = logging.getLogger(__name__)

TICK_S = 0.05
# Service level target: answered within 20 s, in the log's own seconds.
SERVICE_LEVEL_TIME_S = 20.0


@dataclass
class Agent:
    """One agent's state as the switch records it."""

    agent_id: str
    group: str
    busy_until: float | None = None
    callback_call: str = ""
    held_since: float | None = None
    live_served: int = 0
    callbacks_served: int = 0

    @property
    def ready(self) -> bool:
        return self.busy_until is None and not self.callback_call


@dataclass
class Waiting:
    """A caller in the switch queue."""

    call: DemoCall
    arrived_at: float
    in_ivr: bool = False


@dataclass
class LiveStats:
    """Outcomes of live callers (those who stayed in the queue)."""

    arrived: int = 0
    answered: int = 0
    answered_in_target: int = 0
    abandoned: int = 0
    to_ivr: int = 0
    left_with_promise: int = 0
    repeat_arrived: int = 0
    repeat_answered: int = 0
    repeat_promised: int = 0
    repeat_abandoned: int = 0
    waits_log_s: list[float] = field(default_factory=list)


class Desk:
    """The switch queue and agents; see the module docstring.

    Parameters
    ----------
    workload : DemoWorkload
    report_state : callable
        ``report_state(agent_id, busy: bool)``; called on the desk thread,
        so it must only queue the report.
    start_ivr : callable
        ``start_ivr(call: DemoCall) -> bool``, send a caller to the IVR;
        ``False`` when no caller line is free.
    callbacks_waiting : callable
        ``callbacks_waiting(group) -> list[CallbackNeed]``, the group's
        callbacks being dialed and promises due but not released.
    report_contact : callable, optional
        ``report_contact(kind, call, agent_id="")`` for the CTI feed, with
        ``kind`` one of arrived, queued, answered, abandoned and ended.
        Called on the desk thread, so it must only queue the report.
    """

    def __init__(
        self,
        workload,
        report_state,
        start_ivr,
        callbacks_waiting,
        report_contact=None,
    ):
        self.workload = workload
        self.speed = workload.speed
        self.report_state = report_state
        self.start_ivr = start_ivr
        self.callbacks_waiting = callbacks_waiting
        self.report_contact = report_contact or (lambda *args: None)
        # Agent id -> the live call it is serving, for its ENDED event.
        self._serving: dict[str, DemoCall] = {}
        self.agents = {
            agent_id: Agent(agent_id, group)
            for group, ids in workload.agents.items()
            for agent_id in ids
        }
        self.queues: dict[str, collections.deque[Waiting]] = {
            group: collections.deque() for group in workload.agents
        }
        self.stats = LiveStats()
        self.promised_numbers: set[str] = set()
        self.reservations = Reservations()
        self.overbooked = 0
        self.started_at = 0.0
        self._next_arrival = 0
        self._inbox: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._running = False
        self.lock = threading.Lock()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.started_at = time.monotonic()
        self._running = True
        self._thread = threading.Thread(target=self._run, name="desk", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        if self._thread is not None:
            self._thread.join(5.0)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at

    @property
    def arrivals_done(self) -> bool:
        return self._next_arrival >= len(self.workload.calls)

    def position(self, number: str) -> int:
        """Callers ahead of ``number`` in its queue (0 when not queued)."""
        with self.lock:
            for waiting_list in self.queues.values():
                for index, waiting in enumerate(waiting_list):
                    if waiting.call.phone_number == number:
                        return index
        return 0

    def queue_lengths(self) -> dict[str, int]:
        with self.lock:
            return {group: len(waiting) for group, waiting in self.queues.items()}

    def reserved_agents(self) -> int:
        """Agents reserved for callbacks now."""
        with self.lock:
            return len(self.reservations)

    # ------------------------------------------------- entry points (any thread)

    def on_promise(self, number: str) -> None:
        """Take a caller who accepted a callback in the IVR out of the queue."""
        self._inbox.put(("promise", number))

    def on_ivr_ended(self, number: str) -> None:
        """Return a caller whose IVR call ended without a promise to waiting."""
        self._inbox.put(("ivr_ended", number))

    def on_agent_leg(self, call_key: str, user: str, attempt_id: str = "") -> None:
        """Give the callback leg ringing ``user`` (an agent or a group) an agent.

        ``attempt_id`` is the callback attempt of the leg, so the agent
        reserved for it takes it.
        """
        self._inbox.put(("agent_leg", (call_key, user, attempt_id)))

    def on_agent_leg_ended(self, call_key: str) -> None:
        """Free the agent of a callback leg that ended."""
        self._inbox.put(("agent_leg_ended", call_key))

    # -------------------------------------------------------------- the loop

    def _run(self) -> None:
        while self._running:
            try:
                self.step(self.elapsed_s)
            except Exception:  # noqa: BLE001 - the switch must keep running
                logger.exception("desk: step failed")
            time.sleep(TICK_S)

    def step(self, now: float) -> None:
        """Run the switch once at ``now``, seconds after the start.

        The desk's thread calls it every ``TICK_S``; tests call it with
        times of their own instead of starting the thread.
        """
        with self.lock:
            self._drain_inbox(now)
            self._arrive(now)
            self._finish_services(now)
            self._abandon(now)
            for group in self.queues:
                self._assign(group, now)

    def _drain_inbox(self, now: float) -> None:
        while True:
            try:
                kind, value = self._inbox.get_nowait()
            except queue.Empty:
                return
            if kind == "promise":
                self._leave_with_promise(value)
            elif kind == "ivr_ended":
                for waiting in self._waiting_of(value):
                    waiting.in_ivr = False
            elif kind == "agent_leg":
                self._take_callback(*value, now)
            elif kind == "agent_leg_ended":
                self._end_callback(value)

    def _waiting_of(self, number: str) -> list[Waiting]:
        return [
            waiting
            for waiting_list in self.queues.values()
            for waiting in waiting_list
            if waiting.call.phone_number == number
        ]

    def _leave_with_promise(self, number: str) -> None:
        self.promised_numbers.add(number)
        for group, waiting_list in self.queues.items():
            for waiting in list(waiting_list):
                if waiting.call.phone_number == number:
                    waiting_list.remove(waiting)
                    self.reservations.entered_at.setdefault(number, waiting.arrived_at)
                    # The caller hung up with a promise, not in anger: the
                    # contact ends, and abandonment statistics stay clean.
                    self.report_contact("ended", waiting.call)
                    self.stats.left_with_promise += 1
                    if waiting.call.repeat:
                        self.stats.repeat_promised += 1
                    logger.debug("desk: %s left %s with a promise", number, group)

    def _arrive(self, now: float) -> None:
        calls = self.workload.calls
        while self._next_arrival < len(calls):
            call = calls[self._next_arrival]
            if call.arrival_s > now:
                return
            self._next_arrival += 1
            self.stats.arrived += 1
            if call.repeat:
                self.stats.repeat_arrived += 1
            waiting = Waiting(call, now)
            self.queues[call.group].append(waiting)
            self.report_contact("arrived", call)
            self.report_contact("queued", call)
            # A caller facing a queue hears the predicted wait and the offer.
            unreserved = [
                agent
                for agent in self._free_agents(call.group)
                if agent.held_since is None
            ]
            if len(self.queues[call.group]) > 1 or not unreserved:
                if self.start_ivr(call):
                    waiting.in_ivr = True
                    self.stats.to_ivr += 1

    def _finish_services(self, now: float) -> None:
        for agent in self.agents.values():
            if agent.busy_until is not None and agent.busy_until <= now:
                agent.busy_until = None
                served = self._serving.pop(agent.agent_id, None)
                if served is not None:
                    self.report_contact("ended", served, agent.agent_id)
                if not agent.callback_call:
                    self.report_state(agent.agent_id, False)

    def _abandon(self, now: float) -> None:
        for waiting_list in self.queues.values():
            for waiting in list(waiting_list):
                patience = waiting.call.patience_s
                if waiting.in_ivr or patience is None:
                    continue
                if now - waiting.arrived_at >= patience:
                    waiting_list.remove(waiting)
                    self.report_contact("abandoned", waiting.call)
                    self.stats.abandoned += 1
                    if waiting.call.repeat:
                        self.stats.repeat_abandoned += 1

    def _free_agents(self, group: str) -> list[Agent]:
        return [a for a in self.agents.values() if a.group == group and a.ready]

    def _assign(self, group: str, now: float) -> None:
        self._reserve(group, now)
        for agent in self._free_agents(group):
            if agent.held_since is not None:
                continue
            waiting = self._next_live(group)
            if waiting is None:
                return
            self._serve_live(agent, waiting, now)

    def _reserve(self, group: str, now: float) -> None:
        head = self._oldest_live(group)
        self.reservations.update(
            [a for a in self.agents.values() if a.group == group],
            self.callbacks_waiting(group),
            head.arrived_at if head is not None else None,
            self._late_live_caller(group, now),
            now,
        )

    def _oldest_live(self, group: str) -> Waiting | None:
        """Return the caller who has waited longest of those an agent can take."""
        for waiting in self.queues[group]:
            if not waiting.in_ivr:
                return waiting
        return None

    def _late_live_caller(self, group: str, now: float) -> bool:
        """Return whether a live caller has waited past the service-level time."""
        head = self._oldest_live(group)
        if head is None:
            return False
        return (now - head.arrived_at) * self.speed > SERVICE_LEVEL_TIME_S

    def _next_live(self, group: str) -> Waiting | None:
        waiting_list = self.queues[group]
        for waiting in waiting_list:
            if not waiting.in_ivr:
                waiting_list.remove(waiting)
                return waiting
        return None

    def _serve_live(self, agent: Agent, waiting: Waiting, now: float) -> None:
        wait_log_s = (now - waiting.arrived_at) * self.speed
        self.stats.answered += 1
        self.stats.waits_log_s.append(wait_log_s)
        if wait_log_s <= SERVICE_LEVEL_TIME_S:
            self.stats.answered_in_target += 1
        if waiting.call.repeat:
            self.stats.repeat_answered += 1
        agent.busy_until = now + waiting.call.handle_s
        agent.live_served += 1
        self._serving[agent.agent_id] = waiting.call
        self.report_state(agent.agent_id, True)
        self.report_contact("answered", waiting.call, agent.agent_id)

    def _take_callback(
        self, call_key: str, user: str, attempt_id: str, now: float
    ) -> None:
        reserved = self.reservations.take(attempt_id)
        agent = self.agents.get(user)
        if reserved is not None:
            agent = reserved
        elif agent is None or not agent.ready:
            group = agent.group if agent is not None else user
            # An unreserved agent first, so other callbacks keep theirs.
            candidates = self._free_agents(group)
            candidates.sort(key=lambda a: a.held_since is not None)
            if candidates:
                agent = candidates[0]
            else:
                # The coordinator released on a free agent that the switch
                # gave to a live caller meanwhile. The callback still gets
                # an agent, who takes it after the live call.
                self.overbooked += 1
                pool = [a for a in self.agents.values() if a.group == group]
                if not pool:
                    logger.warning("desk: agent leg for unknown agent %s", user)
                    return
                agent = min(pool, key=lambda a: a.busy_until or 0.0)
        self.reservations.forget_agent(agent)
        agent.callback_call = call_key
        agent.callbacks_served += 1
        self.report_state(agent.agent_id, True)

    def _end_callback(self, call_key: str) -> None:
        for agent in self.agents.values():
            if agent.callback_call == call_key:
                agent.callback_call = ""
                if agent.busy_until is None:
                    self.report_state(agent.agent_id, False)
                return

"""The live state of one queue, updated event by event, and its features.

``QueueState`` consumes queue events in time order (a caller joins or
leaves the queue, an agent starts or ends a service, an agent changes
state) and describes the queue at any instant with ``snapshot``: callers
ahead by priority, agents busy and recently active, recent completions,
abandons and waits. It reads nothing but the events already applied, so
a snapshot taken when a caller joins uses nothing recorded afterwards.

``events_from_records`` turns call-log records into these events, and
``cut_records`` gives the records as they were known at an instant, which
is how tests prove that features do not leak the future.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime

from callsure.engine.calllog import CallRecord

# Window over which recent completions, joins and abandons are counted.
RECENT_S = 900.0
# An agent seen serving within this window counts as on duty; the bank's
# log has no login events, so service activity is the only staffing signal.
ACTIVE_S = 1800.0
# Recent waits of callers who entered service, kept for their mean.
RECENT_WAITS = 5
# High-priority callers are credited this much waiting (Anonymous Bank).
PRIORITY_CREDIT_S = 90.0
HIGH_PRIORITY = 2

# Event kinds, in the order applied when several share one timestamp: an
# agent frees up before the next service on it starts, and a caller who
# leaves in the second of joining (q_time 0) joins first.
SERVICE_END = 0
JOIN = 1
LEAVE = 2
SERVICE_START = 3
AGENT_ON = 4
AGENT_OFF = 5


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """One change of the queue.

    Attributes
    ----------
    time : float
        Seconds since the epoch (UTC).
    kind : int
        ``JOIN``, ``LEAVE``, ``SERVICE_START``, ``SERVICE_END``, ``AGENT_ON``
        or ``AGENT_OFF``.
    call_id : int
        Unique key of the call (0 for agent-state events). Call numbers of
        the bank's log repeat across voice response units, so events made
        from the log use the line number.
    priority : int
        Caller's priority, for ``JOIN``.
    served : bool
        For ``LEAVE``: True when the caller went to an agent, False when
        the caller abandoned.
    agent : str
        Agent name for service and agent-state events ("" when unknown).
    call_type : str
        Service type of the call, for ``JOIN`` and ``SERVICE_START``.
    """

    time: float
    kind: int
    call_id: int = 0
    priority: int = 0
    served: bool = False
    agent: str = ""
    call_type: str = ""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The queue as a caller joining at ``time`` finds it.

    Counts are of callers or agents; times are in seconds.
    """

    time: float
    ahead: int
    ahead_high: int
    waiting: int
    busy_agents: int
    active_agents: int
    completions: int
    joins: int
    joins_high: int
    abandons: int
    last_wait_s: float
    recent_wait_s: float
    head_wait_s: float
    service_elapsed_s: float
    since_service_start_s: float


def _queue_key(time: float, priority: int) -> float:
    return time - (PRIORITY_CREDIT_S if priority >= HIGH_PRIORITY else 0.0)


class QueueState:
    """Callers waiting, agents busy and recent history of one queue."""

    def __init__(self) -> None:
        self.waiting: dict[int, tuple[float, float, int]] = {}
        self.in_service: dict[str, float] = {}
        self.agents_on: set[str] = set()
        # Agents signed off while busy: the end of their last call does
        # not count them as active again.
        self.signed_off: set[str] = set()
        self.last_seen: dict[str, float] = {}
        self.completions: deque[float] = deque()
        self.joins: deque[float] = deque()
        self.joins_high: deque[float] = deque()
        self.abandons: deque[float] = deque()
        self.served_waits: deque[float] = deque(maxlen=RECENT_WAITS)
        self.time = float("-inf")
        self.last_service_start = float("-inf")

    def apply(self, event: QueueEvent) -> None:
        """Apply one event; events must come in time order."""
        self.time = max(self.time, event.time)
        if event.kind == JOIN:
            self.waiting[event.call_id] = (
                event.time,
                _queue_key(event.time, event.priority),
                event.priority,
            )
            self.joins.append(event.time)
            if event.priority >= HIGH_PRIORITY:
                self.joins_high.append(event.time)
        elif event.kind == LEAVE:
            entry = self.waiting.pop(event.call_id, None)
            if event.served and entry is not None:
                self.served_waits.append(event.time - entry[0])
            elif not event.served:
                self.abandons.append(event.time)
        elif event.kind == SERVICE_START:
            self.last_service_start = event.time
            if event.agent:
                self.in_service[event.agent] = event.time
                self.last_seen[event.agent] = event.time
                self.signed_off.discard(event.agent)
        elif event.kind == SERVICE_END:
            self.completions.append(event.time)
            if event.agent:
                self.in_service.pop(event.agent, None)
                if event.agent not in self.signed_off:
                    self.last_seen[event.agent] = event.time
        elif event.kind == AGENT_ON:
            self.agents_on.add(event.agent)
            self.last_seen[event.agent] = event.time
            self.signed_off.discard(event.agent)
        elif event.kind == AGENT_OFF:
            self.agents_on.discard(event.agent)
            self.last_seen.pop(event.agent, None)
            self.signed_off.add(event.agent)

    @staticmethod
    def _trim(times: deque[float], since: float) -> int:
        while times and times[0] < since:
            times.popleft()
        return len(times)

    def snapshot(self, time: float, priority: int = 0) -> Snapshot:
        """Describe the queue for a caller of ``priority`` joining at ``time``."""
        key = _queue_key(time, priority)
        ahead = sum(1 for _, other, _ in self.waiting.values() if other <= key)
        ahead_high = sum(
            1
            for _, other, p in self.waiting.values()
            if other <= key and p >= HIGH_PRIORITY
        )
        since_active = time - ACTIVE_S
        active = {a for a, seen in self.last_seen.items() if seen >= since_active}
        active |= self.in_service.keys() | self.agents_on
        recent = time - RECENT_S
        waits = list(self.served_waits)
        entered = [start for start, _, _ in self.waiting.values()]
        started = list(self.in_service.values())
        return Snapshot(
            time=time,
            ahead=ahead,
            ahead_high=ahead_high,
            waiting=len(self.waiting),
            busy_agents=len(self.in_service),
            active_agents=len(active),
            completions=self._trim(self.completions, recent),
            joins=self._trim(self.joins, recent),
            joins_high=self._trim(self.joins_high, recent),
            abandons=self._trim(self.abandons, recent),
            last_wait_s=waits[-1] if waits else 0.0,
            recent_wait_s=sum(waits) / len(waits) if waits else 0.0,
            head_wait_s=time - min(entered) if entered else 0.0,
            service_elapsed_s=time - sum(started) / len(started) if started else 0.0,
            since_service_start_s=min(time - self.last_service_start, ACTIVE_S),
        )


def _seconds(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


def events_from_records(records: Iterable[CallRecord]) -> list[QueueEvent]:
    """Return the queue events of call-log records, sorted by time and kind.

    Fields set to None (a step not reached, or not yet known) give no event.
    """
    events = []
    for record in records:
        q_start, q_exit = _seconds(record.q_start), _seconds(record.q_exit)
        ser_start, ser_exit = _seconds(record.ser_start), _seconds(record.ser_exit)
        agent = record.server or ""
        if q_start is not None:
            events.append(
                QueueEvent(
                    q_start,
                    JOIN,
                    record.line,
                    priority=record.priority,
                    call_type=record.type,
                )
            )
        if q_exit is not None and record.outcome:
            served = record.outcome == "AGENT"
            events.append(QueueEvent(q_exit, LEAVE, record.line, served=served))
        if ser_start is not None:
            events.append(
                QueueEvent(ser_start, SERVICE_START, record.line, agent=agent)
            )
        if ser_exit is not None:
            events.append(QueueEvent(ser_exit, SERVICE_END, record.line, agent=agent))
    events.sort(key=lambda event: (event.time, event.kind, event.call_id))
    return events


def cut_records(records: Iterable[CallRecord], moment: datetime) -> list[CallRecord]:
    """Return the records as known just before ``moment``.

    Calls that entered later are left out; each step at or after
    ``moment`` becomes None, and so does the outcome of a call still in
    the queue, because none of it was recorded yet.
    """
    known = []
    for record in records:
        if record.vru_entry >= moment:
            continue
        changes = {
            name: None
            for name in ("q_start", "q_exit", "ser_start", "ser_exit")
            if getattr(record, name) is not None and getattr(record, name) >= moment
        }
        if record.q_start is not None and "q_exit" in changes:
            changes["outcome"] = ""
        known.append(replace(record, **changes))
    return known


def replay_snapshots(
    events: list[QueueEvent],
) -> Iterator[tuple[QueueEvent, Snapshot]]:
    """Replay events and yield each ``JOIN`` with the snapshot it saw.

    Events sharing a timestamp are applied together after the snapshots of
    the joins among them, so a snapshot reflects only earlier times.
    """
    state = QueueState()
    index = 0
    while index < len(events):
        time = events[index].time
        end = index
        while end < len(events) and events[end].time == time:
            end += 1
        for event in events[index:end]:
            if event.kind == JOIN:
                yield event, state.snapshot(time, event.priority)
        for event in events[index:end]:
            state.apply(event)
        index = end

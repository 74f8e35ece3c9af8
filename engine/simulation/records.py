"""Records of a simulated day: one row per call and per callback, and a trace."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class CallResult:
    """The fate of one inbound call (times in epoch seconds).

    ``outcome`` is ``served``, ``abandoned``, ``callback`` (left the queue
    with a promise) or ``waiting`` (still in the queue when the run ended).
    """

    call_id: int
    line: int
    customer: str
    arrival: float
    priority: int
    redial: bool
    synthetic: bool
    outcome: str = "waiting"
    left_at: float | None = None
    agent: str | None = None
    called_back: bool = False
    """For an abandoned call: whether the engine promised a callback."""

    @property
    def wait_s(self) -> float | None:
        return None if self.left_at is None else self.left_at - self.arrival


@dataclass
class CallbackResult:
    """The fate of one callback promise (times in epoch seconds).

    ``state`` is the scheduler's final state (completed, failed, expired,
    dropped, cancelled), or pending/dialing when the run ended first.
    """

    callback_id: str
    customer: str
    call_id: int
    entry_time: float
    created_at: float
    promised_time: float
    window_end: float
    state: str = "pending"
    first_dial_at: float | None = None
    first_answered: bool | None = None
    attempts: int = 0
    agent_at: float | None = None
    dialed_before_due: int = 0
    overtook: int = 0
    """Inbound callers waiting with an earlier entry time when an agent
    took this callback; 0 under the no-overtaking invariant."""

    @property
    def dial_late_s(self) -> float | None:
        if self.first_dial_at is None:
            return None
        return self.first_dial_at - self.promised_time

    @property
    def kept(self) -> bool:
        return self.agent_at is not None and (
            self.promised_time <= self.agent_at <= self.window_end
        )


@dataclass
class DayTrace:
    """Samples of the center over the day, one per ``TRACE_STEP_S``."""

    time: list[float] = field(default_factory=list)
    arrivals: list[int] = field(default_factory=list)
    queue: list[int] = field(default_factory=list)
    promises_pending: list[int] = field(default_factory=list)
    promises_due: list[int] = field(default_factory=list)
    agents_busy: list[int] = field(default_factory=list)
    agents_on_duty: list[int] = field(default_factory=list)

    def add(self, time, arrivals, queue, pending, due, busy, on_duty) -> None:
        self.time.append(time)
        self.arrivals.append(arrivals)
        self.queue.append(queue)
        self.promises_pending.append(pending)
        self.promises_due.append(due)
        self.agents_busy.append(busy)
        self.agents_on_duty.append(on_duty)

    def as_dict(self) -> dict:
        return {name: list(values) for name, values in self.__dict__.items()}

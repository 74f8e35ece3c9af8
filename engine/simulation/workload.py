"""One day of the call log turned into the inputs of the simulation.

``DayWorkload.from_log`` takes the records of one local day and derives

- the calls that requested an agent (queued, or answered at once), with
  their arrival time at the agent queue, priority, service type, service
  time and patience;
- which of them are redials: an identified customer's call that follows,
  on the same day, a call of theirs that was abandoned in the log;
- the agents' shifts, from the day's own service records;
- what the simulation draws from when the log has no value: service times
  per type (the day's served calls) and redial delays (the log's redials).

Patience is the time a caller is willing to wait. The log shows it for
abandoners only (their queue time). A served caller would have waited at
least as long as they did, so their patience is censored at their wait:
it is drawn from the fitted distribution conditioned on exceeding it. The
fitted distribution is exponential, with the maximum-likelihood mean over
the whole log (queue time of every queued caller over abandons), so the
conditional draw is the wait plus an exponential draw.

Every draw uses a generator seeded from the run's seed and the call's line
number, so a call behaves the same in every scenario of one run.
"""

from __future__ import annotations

import bisect
import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np

from callsure.engine.calllog import CallLog, CallRecord
from callsure.engine.exceptions import ValidationError

# An agent with no service for longer than this is off duty in between.
# The log has no login events, so a gap this long is read as a break or
# the end of a shift rather than idle time on duty.
SHIFT_GAP_S = 1800.0
# Callers waiting longer than this in total during an agent's idle gap
# mark the gap as time off duty (see ``reconstruct_shifts``).
BUSY_QUEUE_S = 20.0
# A service of zero logged seconds still occupies the agent for a moment.
MIN_SERVICE_S = 1.0

# Independent random streams per call, so that adding a draw to one stream
# does not shift the values of another.
STREAM_PATIENCE = 1
STREAM_SERVICE = 2
STREAM_ACCEPT = 3
STREAM_DIAL = 4
STREAM_REDIAL = 5


def draw(seed: int, stream: int, *keys: int) -> np.random.Generator:
    """Return a generator for one decision, seeded by the run, stream and keys."""
    return np.random.default_rng([seed, stream, *keys])


@dataclass(frozen=True)
class CallInput:
    """A call of the log that requested an agent.

    Attributes
    ----------
    line : int
        Line of the log, the call's key in every draw.
    customer : str
        Customer id; ``anon-<line>`` when the log did not identify one.
    identified : bool
        Whether the log identified the customer (redials are traceable).
    arrival : datetime
        When the call reached the agent queue (UTC).
    priority : int
        0 and 1 regular, 2 high.
    call_type : str
        Service type (PS, PE, IN, NE, NW, TT).
    service_s : float
        Service time: the logged one, or a draw when the log has none.
    patience_s : float
        Time the caller waits before abandoning, measured from ``arrival``.
    log_outcome : str
        ``AGENT`` or ``HANG`` in the log.
    redial_of : int or None
        Line of the same customer's abandoned call that this call redials.
    """

    line: int
    customer: str
    identified: bool
    arrival: datetime
    priority: int
    call_type: str
    service_s: float
    patience_s: float
    log_outcome: str
    redial_of: int | None = None


@dataclass(frozen=True)
class Shift:
    """An agent on duty in ``[start, end)``."""

    agent: str
    start: datetime
    end: datetime


@dataclass
class DayWorkload:
    """Calls, shifts and draw pools of one local day of the log.

    Attributes
    ----------
    day : date
        Local date (the log's time zone).
    calls : list[CallInput]
        Calls that requested an agent, by arrival time.
    shifts : list[Shift]
        Agents' shifts reconstructed from the day's services.
    mean_patience_s : float
        Mean of the fitted exponential patience.
    redial_probability : float
        Share of identified abandoners who called again the same day.
    redial_delays_s : numpy.ndarray
        Observed delays from an abandonment to the redial, in seconds.
    service_pool : dict[str, numpy.ndarray]
        Logged service times of the day by type (``"*"``: all types).
    vru_only : int
        Calls of the day that never asked for an agent (left out).
    """

    day: date
    calls: list[CallInput]
    shifts: list[Shift]
    mean_patience_s: float
    redial_probability: float
    redial_delays_s: np.ndarray
    service_pool: dict[str, np.ndarray] = field(default_factory=dict)
    vru_only: int = 0

    @classmethod
    def from_log(
        cls,
        log: CallLog,
        day: date,
        *,
        seed: int = 0,
        zone: str = "Asia/Jerusalem",
        shift_gap_s: float = SHIFT_GAP_S,
    ) -> DayWorkload:
        """Build the workload of local date ``day`` from ``log``.

        Raises
        ------
        ValidationError
            When the log has no call that requested an agent on ``day``.
        """
        tz = ZoneInfo(zone)
        records = [r for r in log.records if r.vru_entry.astimezone(tz).date() == day]
        requests = [r for r in records if r.queued or r.served]
        if not requests:
            days = sorted({r.vru_entry.astimezone(tz).date() for r in log.records})
            span = f"{days[0]} to {days[-1]}" if days else "no days"
            raise ValidationError(
                "day", day.isoformat(), f"choose a day of the log ({span})"
            )
        mean_patience_s = fit_patience(log.records)
        probability, delays = fit_redials(log.records, tz)
        pool = _service_pool(requests)
        calls = [
            _call_input(record, seed, mean_patience_s, pool)
            for record in sorted(requests, key=_arrival)
        ]
        return cls(
            day=day,
            calls=_link_redials(calls),
            shifts=reconstruct_shifts(requests, shift_gap_s),
            mean_patience_s=mean_patience_s,
            redial_probability=probability,
            redial_delays_s=delays,
            service_pool=pool,
            vru_only=len(records) - len(requests),
        )

    def draw_service_s(self, call_type: str, rng: np.random.Generator) -> float:
        """Draw a service time of ``call_type`` from the day's served calls."""
        return _draw_service(self.service_pool, call_type, rng)


def _arrival(record: CallRecord) -> datetime:
    # A call answered without queueing reached the agents when served.
    return record.q_start or record.ser_start


def fit_patience(records: Iterable[CallRecord]) -> float:
    """Fit the mean of an exponential patience, served callers censored.

    Returns the total queue time of queued callers over the number of
    abandons (the maximum-likelihood estimate under censoring).
    """
    exposure_s = 0.0
    abandons = 0
    for record in records:
        if record.queued:
            exposure_s += record.wait_s
            abandons += not record.served
    if abandons == 0:
        return math.inf
    return exposure_s / abandons


def fit_redials(
    records: Iterable[CallRecord], tz: ZoneInfo
) -> tuple[float, np.ndarray]:
    """Return the same-day redial share of identified abandoners and the
    delays (seconds) from their abandonment to the next call."""
    by_customer: dict[tuple[int, date], list[CallRecord]] = defaultdict(list)
    for record in records:
        if (record.queued or record.served) and record.customer_id != 0:
            key = (record.customer_id, record.vru_entry.astimezone(tz).date())
            by_customer[key].append(record)
    abandons = 0
    delays = []
    for calls in by_customer.values():
        calls.sort(key=_arrival)
        for first, following in zip(calls, [*calls[1:], None], strict=True):
            if first.outcome != "HANG":
                continue
            abandons += 1
            if following is not None:
                gap = (_arrival(following) - first.q_exit).total_seconds()
                delays.append(max(gap, 0.0))
    probability = len(delays) / abandons if abandons else 0.0
    return probability, np.asarray(delays if delays else [900.0])


def _service_pool(records: list[CallRecord]) -> dict[str, np.ndarray]:
    by_type: dict[str, list[float]] = defaultdict(list)
    for record in records:
        if record.served:
            seconds = max(record.service_s, MIN_SERVICE_S)
            by_type[record.type].append(seconds)
            by_type["*"].append(seconds)
    if not by_type:
        raise ValidationError("day", "no served call", "choose a day with services")
    return {name: np.asarray(values) for name, values in by_type.items()}


def _draw_service(
    pool: dict[str, np.ndarray], call_type: str, rng: np.random.Generator
) -> float:
    values = pool.get(call_type)
    if values is None or values.size < 10:
        values = pool["*"]
    return float(values[rng.integers(values.size)])


def _call_input(
    record: CallRecord, seed: int, mean_patience_s: float, pool
) -> CallInput:
    wait_s = record.wait_s or 0.0
    if record.served:
        service_s = max(record.service_s, MIN_SERVICE_S)
    else:
        service_s = _draw_service(
            pool, record.type, draw(seed, STREAM_SERVICE, record.line)
        )
    if record.outcome == "HANG":
        patience_s = wait_s
    else:
        # Censored at the observed wait; memoryless, so the excess is a
        # fresh exponential draw.
        rng = draw(seed, STREAM_PATIENCE, record.line)
        patience_s = wait_s + float(rng.exponential(mean_patience_s))
    identified = record.customer_id != 0
    return CallInput(
        line=record.line,
        customer=str(record.customer_id) if identified else f"anon-{record.line}",
        identified=identified,
        arrival=_arrival(record),
        priority=record.priority,
        call_type=record.type,
        service_s=service_s,
        patience_s=patience_s,
        log_outcome=record.outcome,
    )


def _link_redials(calls: list[CallInput]) -> list[CallInput]:
    last_of: dict[str, CallInput] = {}
    linked = []
    for call in calls:
        previous = last_of.get(call.customer) if call.identified else None
        if previous is not None and previous.log_outcome == "HANG":
            call = CallInput(**{**call.__dict__, "redial_of": previous.line})
        last_of[call.customer] = call
        linked.append(call)
    return linked


def reconstruct_shifts(
    records: Iterable[CallRecord],
    gap_s: float = SHIFT_GAP_S,
    busy_queue_s: float = BUSY_QUEUE_S,
) -> list[Shift]:
    """Reconstruct agents' shifts from one day's services.

    An agent is on duty from a service start to the next service end and
    stays on duty between two services unless the gap was a break:

    - the gap is longer than ``gap_s``; or
    - callers were waiting in the queue for more than ``busy_queue_s`` of
      the gap. An agent on duty does not leave callers waiting while idle
      (the queue is work-conserving), so such a gap was after-call work,
      a break or other work.

    This reads the day's schedule from the log as a planner would know it
    in advance; the predictor does not see it (it learns the staffing
    from the events it is fed).
    """
    records = list(records)
    waiting = _waiting_intervals(records)
    services: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for record in records:
        if record.served and record.server:
            services[record.server].append((record.ser_start, record.ser_exit))
    shifts = []
    for agent, spans in sorted(services.items()):
        spans.sort()
        start, end = spans[0]
        for begin, finish in spans[1:]:
            gap = (begin - end).total_seconds()
            if gap > gap_s or (
                gap > 0
                and waiting.covered(end.timestamp(), begin.timestamp()) > busy_queue_s
            ):
                shifts.append(Shift(agent, start, end))
                start = begin
            end = max(end, finish)
        shifts.append(Shift(agent, start, end))
    return shifts


@dataclass
class _Intervals:
    """A union of disjoint, sorted intervals of epoch seconds."""

    starts: list[float]
    ends: list[float]

    def covered(self, begin: float, end: float) -> float:
        """Seconds of ``[begin, end]`` inside the union."""
        index = max(bisect.bisect_right(self.starts, begin) - 1, 0)
        total = 0.0
        while index < len(self.starts) and self.starts[index] < end:
            total += max(
                0.0, min(end, self.ends[index]) - max(begin, self.starts[index])
            )
            index += 1
        return total


def _waiting_intervals(records: list[CallRecord]) -> _Intervals:
    spans = sorted(
        (r.q_start.timestamp(), r.q_exit.timestamp())
        for r in records
        if r.queued and r.q_exit > r.q_start
    )
    starts: list[float] = []
    ends: list[float] = []
    for begin, end in spans:
        if starts and begin <= ends[-1]:
            ends[-1] = max(ends[-1], end)
        else:
            starts.append(begin)
            ends.append(end)
    return _Intervals(starts, ends)

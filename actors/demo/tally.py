"""Counts of the demo: promises, attempts, verdicts against truth, live callers.

``Tally`` receives the events of every part (phones, gateway, IVR
backend, the coordinator's journal) on their own threads, keeps the
counts under one lock, and builds the report. Truth for the call-progress
verdicts comes from the customer phones: each incoming callback reports
the recording it plays, whose label is in the recordings' ``labels.csv``.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from callsure.actors.demo.desk import SERVICE_LEVEL_TIME_S
from callsure.actors.demo.reservations import CallbackNeed
from callsure.actors.demo.workload import VIP_AGENT, DemoWorkload
from callsure.actors.sip.callflow import ATTEMPT_ID_HEADER

FINAL_KINDS = {
    "callback.completed": "completed",
    "callback.failed": "failed",
    "callback.expired": "expired",
    "callback.cancelled": "cancelled",
    "callback.dropped": "dropped",
}
VERDICT_LABELS = ("HUMAN", "MACHINE", "SIT", "FAX", "SILENCE")
# Verdicts after which the gateway may bridge the customer to an agent.
PERSON_VERDICTS = ("HUMAN", "NOTSURE")


@dataclass
class Promise:
    """One callback promise as the demo follows it."""

    callback_id: str
    number: str
    group: str
    mode: str
    created_at: datetime
    promised_time: datetime | None
    state: str = "pending"
    completed_at: datetime | None = None
    vip: bool = False
    # The engine's view from the journal and the dial orders: pending or
    # dialing, the earliest release time and the number of attempts.
    engine_state: str = "pending"
    not_before: datetime | None = None
    last_attempt: int = 0
    # The attempt handed to the gateway last, and its dedicated agent.
    dialed_attempt: str = ""
    dialed_agent: str = ""

    @property
    def progress(self) -> int:
        """Rank of the engine state: pending 0, dialing 1, pending again 2..."""
        return 2 * self.last_attempt - (self.engine_state == "dialing")


class Tally:
    """Counts of one demo run; see the module docstring."""

    def __init__(
        self, workload: DemoWorkload, keep_window_s: float, dial_lead_s: float = 0.0
    ):
        self.workload = workload
        self.keep_window_s = keep_window_s
        # The engine releases a timed promise this long before its time.
        self.dial_lead_s = dial_lead_s
        self.lock = threading.Lock()
        self.desk = None
        self.promises: dict[str, Promise] = {}
        self.ivr_calls: dict[str, str] = {}
        self.ivr_dialed = 0
        self.ivr_choices: Counter = Counter()
        self.ivr_completed = 0
        self.truth_of_attempt: dict[str, str] = {}
        self.recording_of_attempt: dict[str, str] = {}
        self.verdict_of_attempt: dict[str, str] = {}
        # Attempts that ended, or that reached no person, so they need no
        # agent.
        self.attempts_done: set[str] = set()
        self.outcomes: Counter = Counter()
        self.attempt_log: list[dict] = []
        self.orders = 0
        self.vip_orders = 0
        self.vip_to_dedicated = 0
        self.retries = 0
        self.sms_requests = 0
        self.overdue = 0
        self.events_seen = 0
        self.started = time.monotonic()
        vip_ids = set(workload.vip_customers)
        self._vip_numbers = {
            c.phone_number for c in workload.calls if c.customer_id in vip_ids
        }

    # ----------------------------------------------------------------- events

    def on_ivr_dialed(self, call, choice: str) -> None:
        with self.lock:
            self.ivr_dialed += 1
            self.ivr_choices[choice or "none"] += 1
            self.ivr_calls[call.phone_number] = "dialing"

    def on_caller_phone_event(self, event: dict) -> None:
        ended = event["ev"] == "dial_failed" or (
            event["ev"] == "state" and event["state"] == "DISCONNECTED"
        )
        if not ended:
            return
        number = event["user"]
        with self.lock:
            if self.ivr_calls.pop(number, None) is not None:
                self.ivr_completed += 1
        if self.desk is not None:
            self.desk.on_ivr_ended(number)

    def on_customer_phone_event(self, event: dict) -> None:
        if event["ev"] != "incoming":
            return
        attempt_id = event["headers"].get(ATTEMPT_ID_HEADER, "")
        action = event.get("action", "answer")
        if action == "ring":
            truth = "NO_ANSWER"
        elif action == "reject":
            truth = "BUSY"
        else:
            truth = self.workload.truth.get(event.get("play", ""), "UNKNOWN")
        with self.lock:
            self.truth_of_attempt[attempt_id] = truth
            if event.get("play"):
                self.recording_of_attempt[attempt_id] = Path(event["play"]).name

    def on_gateway_event(self, kind: str, payload: dict) -> None:
        attempt_id = payload.get("attempt_id")
        if attempt_id is None:
            return
        with self.lock:
            if kind == "call.verdict":
                self.verdict_of_attempt[attempt_id] = payload["verdict"]
                if payload["verdict"] not in PERSON_VERDICTS:
                    self.attempts_done.add(attempt_id)
            elif kind == "call.ended":
                self.attempts_done.add(attempt_id)

    def on_promise(self, number: str, mode: str, callback) -> None:
        callback_id = callback.name.removeprefix("callbacks/")
        promised = None
        if mode != "asap" and callback.promised_window.HasField("start_time"):
            promised = callback.promised_window.start_time.ToDatetime(tzinfo=UTC)
        with self.lock:
            self.promises.setdefault(
                callback_id,
                Promise(
                    callback_id=callback_id,
                    number=number,
                    group=callback.queue,
                    mode=mode,
                    created_at=datetime.now(UTC),
                    promised_time=promised,
                    vip=number in self._vip_numbers,
                    not_before=promised or datetime.now(UTC),
                ),
            )

    def on_order(self, order) -> None:
        """Count an order handed to the gateway, whose attempt is now dialing."""
        with self.lock:
            promise = self.promises.get(order.callback_id)
            if promise is not None and order.attempt_number * 2 - 1 >= (
                promise.progress
            ):
                promise.engine_state = "dialing"
                promise.last_attempt = order.attempt_number
            if promise is not None:
                promise.dialed_attempt = order.attempt_id
                promise.dialed_agent = order.target.agent_id or ""
            self.orders += 1
            if order.phone_number in self._vip_numbers:
                self.vip_orders += 1
                if order.target.agent_id == VIP_AGENT:
                    self.vip_to_dedicated += 1

    def on_outcome(self, report) -> None:
        with self.lock:
            self.attempts_done.add(report.attempt_id)
            self.outcomes[report.outcome.value] += 1
            self.attempt_log.append(
                {
                    "attempt": report.attempt_id,
                    "truth": self.truth_of_attempt.get(report.attempt_id, ""),
                    "recording": self.recording_of_attempt.get(report.attempt_id, ""),
                    "verdict": report.verdict,
                    "outcome": report.outcome.value,
                    "detail": report.detail,
                }
            )

    def on_journal_event(self, event) -> None:
        with self.lock:
            self.events_seen += 1
            if event.kind == "callback.retry_scheduled":
                self.retries += 1
            elif event.kind == "sms.requested":
                self.sms_requests += 1
            elif event.kind == "callback.overdue":
                self.overdue += 1
            promise = self.promises.get(event.callback_id)
            if promise is None:
                return
            _follow_engine(promise, event.payload.get("callback"))
            state = FINAL_KINDS.get(event.kind)
            if state is None:
                return
            promise.state = state
            if state == "completed":
                promise.completed_at = event.time

    # ---------------------------------------------------------------- queries

    def callbacks_waiting(self, group: str) -> list[CallbackNeed]:
        """List the callbacks of ``group`` being dialed and its promises due
        but not released.

        A promise waiting out a retry delay, or released and waiting for a
        customer line, is neither.
        """
        now = datetime.now(UTC)
        needs = []
        with self.lock:
            for p in self.promises.values():
                if p.group != group or p.state != "pending":
                    continue
                if p.engine_state == "dialing":
                    attempt_id = f"{p.callback_id}/{p.last_attempt}"
                    if (
                        p.dialed_attempt == attempt_id
                        and attempt_id not in self.attempts_done
                    ):
                        needs.append(
                            CallbackNeed(
                                attempt_id, p.number, True, agent_id=p.dialed_agent
                            )
                        )
                elif self._is_due(p, now):
                    needs.append(
                        CallbackNeed(
                            f"{p.callback_id}/{p.last_attempt + 1}",
                            p.number,
                            False,
                            timed=p.promised_time is not None,
                            agent_id=VIP_AGENT if p.vip else "",
                        )
                    )
        return needs

    def _is_due(self, promise: Promise, now: datetime) -> bool:
        if promise.engine_state != "pending" or promise.not_before is None:
            return False
        return promise.not_before - timedelta(seconds=self.dial_lead_s) <= now

    def open_promises(self) -> int:
        with self.lock:
            return sum(1 for p in self.promises.values() if p.state == "pending")

    def ivr_lines_in_use(self) -> int:
        with self.lock:
            return len(self.ivr_calls)

    def ivr_in_progress(self) -> bool:
        return self.ivr_lines_in_use() > 0

    def snapshot(self) -> dict:
        """Counts for the live view."""
        with self.lock:
            states = Counter(p.state for p in self.promises.values())
            kept, late = self._kept_and_late()
            verdicts = Counter(self.verdict_of_attempt.values())
            now = datetime.now(UTC)
            return {
                "promises": len(self.promises),
                "pending": states["pending"],
                "due": sum(
                    1
                    for p in self.promises.values()
                    if p.state == "pending" and self._is_due(p, now)
                ),
                "kept": kept,
                "late": late,
                "failed": states["failed"] + states["expired"],
                "dialed": self.orders,
                "verdicts": dict(verdicts),
                "sms": self.sms_requests,
                "retries": self.retries,
                "ivr_active": len(self.ivr_calls),
            }

    def _kept_and_late(self) -> tuple[int, int]:
        kept = late = 0
        for promise in self.promises.values():
            if promise.state != "completed":
                continue
            if self._late_s(promise) > self.keep_window_s:
                late += 1
            else:
                kept += 1
        return kept, late

    @staticmethod
    def _late_s(promise: Promise) -> float:
        if promise.promised_time is None or promise.completed_at is None:
            return 0.0
        return (promise.completed_at - promise.promised_time).total_seconds()

    # ----------------------------------------------------------------- report

    def report(self, command_options, elapsed_s: float, server: str) -> dict:
        """Build the end-of-run report as plain data (written as JSON)."""
        desk = self.desk
        # Callers still in the queue, in the IVR or waiting for an agent.
        # Read before the tally's lock is taken, because the desk's thread
        # takes the desk's lock first and then the tally's.
        waiting_at_end = sum(desk.queue_lengths().values())
        with self.lock:
            promises = list(self.promises.values())
            kept, late = self._kept_and_late()
            matrix: dict[str, Counter] = {}
            matched = judged = 0
            for attempt_id, truth in self.truth_of_attempt.items():
                if truth not in VERDICT_LABELS:
                    continue
                verdict = self.verdict_of_attempt.get(attempt_id, "NONE")
                matrix.setdefault(truth, Counter())[verdict] += 1
                judged += 1
                matched += verdict == truth
            lateness = [
                self._late_s(p)
                for p in promises
                if p.state == "completed" and p.promised_time is not None
            ]
            asap_waits = [
                (p.completed_at - p.created_at).total_seconds()
                for p in promises
                if p.state == "completed" and p.promised_time is None and p.completed_at
            ]
            states = Counter(p.state for p in promises)
            live = desk.stats
            finished_live = live.answered + live.abandoned
            return {
                "command": {
                    "log": str(command_options.log_path),
                    "start": command_options.start,
                    "minutes": command_options.minutes,
                    "speed": command_options.speed,
                    "seed": command_options.seed,
                },
                "server": server,
                "elapsed_s": round(elapsed_s, 1),
                "callers": len(self.workload.calls),
                "agents": {g: len(a) for g, a in self.workload.agents.items()},
                "ivr": {
                    "calls": self.ivr_dialed,
                    "choices": dict(self.ivr_choices),
                },
                "promises": {
                    "made": len(promises),
                    "by_mode": dict(Counter(p.mode for p in promises)),
                    "kept": kept,
                    "late": late,
                    "states": dict(states),
                    "open_at_end": states["pending"],
                    # Promised for a time after the run's end, so not late.
                    "open_at_end_not_due": sum(
                        1
                        for p in promises
                        if p.state == "pending"
                        and p.promised_time is not None
                        and p.promised_time > datetime.now(UTC)
                    ),
                    "keep_window_s": self.keep_window_s,
                    "median_late_s": _median(lateness),
                    "max_late_s": max(lateness, default=None),
                    "median_asap_wait_s": _median(asap_waits),
                    "vip": sum(1 for p in promises if p.vip),
                },
                "attempts": {
                    "dialed": self.orders,
                    "outcomes": dict(self.outcomes),
                    "retries": self.retries,
                    "vip_dialed": self.vip_orders,
                    "vip_to_dedicated_agent": self.vip_to_dedicated,
                },
                "amd": {
                    "judged": judged,
                    "matched": matched,
                    "accuracy": round(matched / judged, 3) if judged else None,
                    "by_truth": {t: dict(c) for t, c in sorted(matrix.items())},
                },
                "attempt_log": list(self.attempt_log),
                "sms_requests": self.sms_requests,
                "overdue": self.overdue,
                "live": {
                    "arrived": live.arrived,
                    "answered": live.answered,
                    "abandoned": live.abandoned,
                    "sent_to_ivr": live.to_ivr,
                    "left_with_promise": live.left_with_promise,
                    "waiting_at_end": waiting_at_end,
                    "service_level": (
                        round(live.answered_in_target / finished_live, 3)
                        if finished_live
                        else None
                    ),
                    "service_level_time_s": SERVICE_LEVEL_TIME_S,
                    "abandonment": (
                        round(live.abandoned / finished_live, 3)
                        if finished_live
                        else None
                    ),
                    "median_wait_log_s": _median(live.waits_log_s),
                    "agent_overbooked": desk.overbooked,
                },
                "repeat_callers": {
                    "arrived": live.repeat_arrived,
                    "answered": live.repeat_answered,
                    "promised": live.repeat_promised,
                    "abandoned": live.repeat_abandoned,
                },
            }


def _follow_engine(promise: Promise, row: dict | None) -> None:
    """Update ``promise`` from a journal event's callback row, unless the row
    is older than what a dial order showed already."""
    if not row or row.get("state") not in ("pending", "dialing"):
        return
    last_attempt = int(row.get("last_attempt", 0))
    progress = 2 * last_attempt - (row["state"] == "dialing")
    if progress < promise.progress:
        return
    promise.engine_state = row["state"]
    promise.last_attempt = last_attempt
    not_before = row.get("not_before")
    if isinstance(not_before, int | float):
        promise.not_before = datetime.fromtimestamp(not_before, UTC)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None

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
from datetime import UTC, datetime
from pathlib import Path

from callsure.actors.demo.desk import SERVICE_LEVEL_TIME_S
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


class Tally:
    """Counts of one demo run; see the module docstring."""

    def __init__(self, workload: DemoWorkload, keep_window_s: float):
        self.workload = workload
        self.keep_window_s = keep_window_s
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
        if kind == "call.verdict":
            with self.lock:
                self.verdict_of_attempt[payload["attempt_id"]] = payload["verdict"]

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
                ),
            )

    def on_order(self, order) -> None:
        with self.lock:
            self.orders += 1
            if order.phone_number in self._vip_numbers:
                self.vip_orders += 1
                if order.target.agent_id == VIP_AGENT:
                    self.vip_to_dedicated += 1

    def on_outcome(self, report) -> None:
        with self.lock:
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
            state = FINAL_KINDS.get(event.kind)
            promise = self.promises.get(event.callback_id)
            if state is None or promise is None:
                return
            promise.state = state
            if state == "completed":
                promise.completed_at = event.time

    # ---------------------------------------------------------------- queries

    def due_callbacks(self, group: str) -> int:
        """Open promises of ``group`` due now (asap, or their time has come)."""
        now = datetime.now(UTC)
        with self.lock:
            return sum(
                1
                for p in self.promises.values()
                if p.group == group
                and p.state == "pending"
                and (p.promised_time is None or p.promised_time <= now)
            )

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
            return {
                "promises": len(self.promises),
                "pending": states["pending"],
                "due": sum(
                    1
                    for p in self.promises.values()
                    if p.state == "pending"
                    and (
                        p.promised_time is None or p.promised_time <= datetime.now(UTC)
                    )
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


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None

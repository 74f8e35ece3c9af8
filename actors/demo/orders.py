"""Dial orders from the coordinator to the demo's gateway, and their outcomes.

``Workers`` runs three threads. The first takes orders from the
``DialRelay``, claims each with ``Coordinator.start_dialing`` and hands
it to the gateway while a customer line is free. The second reports each
call's outcome to the coordinator, and the third reads the coordinator's
event journal into the tally.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time

from callsure.engine.callbacks import Outcome
from callsure.engine.exceptions import CallsureError

logger = logging.getLogger(__name__)

DIALER_NAME = "demo-gateway"
# Callbacks in flight at once. The customers' and the agents' phone banks
# are one pjsua2 process each, of the wheel's four calls. An INVITE beyond
# them gets 486 or 503 from PJSUA itself, which would pass for a busy
# customer. A call slot also stays taken for a moment after the gateway
# reports the call ended, hence one line less than four.
CUSTOMER_LINES = 3
# The log's longest service (3,736 s) at 12x lasts 311 s.
STALE_LINE_S = 600.0


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

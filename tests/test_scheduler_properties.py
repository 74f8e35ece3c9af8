"""Invariants of the scheduler under random operations (hypothesis).

* Order: a release never leaves behind a due promise of the same queue
  that entered earlier (promises held for their dedicated agent aside).
* Capacity: no interval releases more than the admin cap (a release
  returned undialed takes no agent and does not count).
* One attempt in flight per promise, and a promise is DIALING exactly
  when it has one.
* The per-minute booking counters equal a count of the open promises.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from datetime import timedelta
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from scheduler_support import T0, make_scheduler, request

from callsure.engine.callbacks import CallbackMode, CallbackState, Outcome
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import CallsureError
from callsure.engine.scheduler import interval_start

CAP = 3
CUSTOMERS = [f"c{i}" for i in range(8)]
QUEUES = ["billing", "sales"]
REPORTABLE = [o for o in Outcome if o not in (Outcome.NOT_DIALED, Outcome.UNKNOWN)]


class SchedulerMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="callsure-props-"))
        self.clock = VirtualClock(T0)
        self.scheduler = make_scheduler(self.folder / "p.db", self.clock, cap=CAP)
        self.open_orders = []

    def teardown(self):
        self.scheduler.store.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    @rule(
        customer=st.sampled_from(CUSTOMERS),
        queue=st.sampled_from(QUEUES),
        waited_s=st.integers(0, 3600),
        at_offset_s=st.one_of(st.none(), st.integers(0, 3600)),
        dedicated=st.booleans(),
    )
    def create(self, customer, queue, waited_s, at_offset_s, dedicated):
        now = self.clock.now()
        fields = {"entry_time": now - timedelta(seconds=waited_s)}
        if at_offset_s is not None:
            fields["mode"] = CallbackMode.AT_TIME
            fields["requested_time"] = now + timedelta(seconds=at_offset_s)
        if dedicated:
            fields["dedicated_agent_id"] = "a-vip"
        try:
            self.scheduler.create(request(customer, queue=queue, **fields))
        except CallsureError:
            pass  # rejecting an infeasible time is a valid result

    @rule(seconds=st.integers(0, 1800))
    def advance(self, seconds):
        self.clock.advance(seconds)

    @rule(
        free=st.one_of(st.none(), st.integers(0, 4)),
        vip_ready=st.booleans(),
    )
    def release(self, free, vip_ready):
        now = self.clock.now()
        free_agents = None if free is None else dict.fromkeys(QUEUES, free)
        ready = {"a-vip"} if vip_ready else set()
        orders = self.scheduler.due(free_agents=free_agents, ready_agents=ready)
        self.open_orders.extend(orders)
        self.check_order(orders, now, ready)

    def check_order(self, orders, now, ready):
        for queue in QUEUES:
            released = [o.entry_time for o in orders if o.target.queue == queue]
            if not released:
                continue
            latest = max(released)
            store = self.scheduler.store
            for callback in store.due_callbacks(queue, now, 1000):
                held_for_agent = (
                    callback.dedicated_agent_id is not None
                    and callback.fallback_at > now
                    and callback.dedicated_agent_id not in ready
                )
                if not held_for_agent:
                    assert callback.entry_time >= latest, (callback, latest)

    @rule(
        pick=st.integers(0, 50),
        outcome=st.sampled_from(REPORTABLE),
        started=st.booleans(),
    )
    def report(self, pick, outcome, started):
        if not self.open_orders:
            return
        order = self.open_orders.pop(pick % len(self.open_orders))
        try:
            if started:
                self.scheduler.start_dialing(order.attempt_id, "gw")
                self.scheduler.report_outcome(order.attempt_id, outcome)
            else:
                self.scheduler.report_outcome(order.attempt_id, Outcome.NOT_DIALED)
        except CallsureError:
            pass  # the lease expired meanwhile; recovery owns the attempt

    @rule(customer=st.sampled_from(CUSTOMERS), queue=st.sampled_from(QUEUES))
    def reached_agent(self, customer, queue):
        self.scheduler.customer_reached_agent(customer, queue, self.clock.now())

    @invariant()
    def capacity_per_interval(self):
        rows = self.scheduler.store._db.execute(
            "SELECT queue, issued_at FROM attempts "
            "WHERE outcome IS NULL OR outcome != 'not_dialed'"
        ).fetchall()
        per_interval = Counter(
            (queue, interval_start(T0 + timedelta(seconds=at - T0.timestamp()), 900.0))
            for queue, at in rows
        )
        assert all(count <= CAP for count in per_interval.values()), per_interval

    @invariant()
    def bookings_match_promises(self):
        db = self.scheduler.store._db
        counted = db.execute(
            "SELECT queue, CAST(promised_time / 60 AS INTEGER), COUNT(*) "
            "FROM callbacks WHERE state IN ('pending', 'dialing') "
            "AND promised_time IS NOT NULL GROUP BY 1, 2"
        ).fetchall()
        kept = db.execute(
            "SELECT queue, minute, count FROM bookings WHERE count != 0"
        ).fetchall()
        assert sorted(kept) == sorted(counted)

    @invariant()
    def one_attempt_in_flight(self):
        db = self.scheduler.store._db
        open_attempts = dict(
            db.execute(
                "SELECT callback_id, COUNT(*) FROM attempts WHERE state != 'final' "
                "GROUP BY callback_id"
            ).fetchall()
        )
        assert all(count == 1 for count in open_attempts.values())
        dialing = {
            row[0]
            for row in db.execute(
                "SELECT callback_id FROM callbacks WHERE state = ?",
                (CallbackState.DIALING.value,),
            )
        }
        assert dialing == set(open_attempts)


SchedulerMachine.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_scheduler_invariants = SchedulerMachine.TestCase

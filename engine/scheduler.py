"""The callback scheduler: promises from request to outcome, durably.

``CallbackScheduler`` is the plain state class the coordinator hosts. It
owns no state in memory that a restart would lose: every change is one
transaction in the store (current-state rows plus journal events), and
``create`` returns only after that transaction is durable.

API (all times timezone-aware UTC; every argument and result pickles)
---------------------------------------------------------------------
``CallbackScheduler(store, predictor, clock, policy=None)``

Durability: every method that changes state commits before it returns.
Inside ``store.batch()`` the commits of many calls become one durable
transaction at the end of the block, so a caller announces those results
only after the block.

Requests and queries:

* ``create(request) -> Callback``. Idempotent by ``request.request_id``:
  a replayed id returns the promise the first call stored; the same id
  with other identifying fields raises ``RequestIdReusedError``. A second
  request of the same customer for the same queue updates the open
  promise (same callback id, earliest entry time kept) instead of adding
  one. Raises ``ValidationError`` (bad field, ``InvalidPhoneNumberError``,
  ``InvalidTimeError``) or ``InfeasibleTimeError`` with
  ``nearest_feasible``.
* ``get(callback_id) -> Callback``; ``attempts(callback_id) -> list[Attempt]``.
* ``list(state=, customer_id=, queue=, page_size=, page_token=)``
  ``-> (list[Callback], next_page_token)``; ``""`` ends the listing.
* ``cancel(callback_id, reason) -> Callback``. Idempotent on a cancelled
  promise. During a dial the stop applies when the attempt ends.
* ``customer_reached_agent(customer_id, queue, when) -> list[Callback]``:
  drops open promises created before ``when`` (reason recorded).
  ``queue=None`` drops them in every queue.

Dialing (at most one dial per attempt, see "Leases" below):

* ``due(now=None, *, free_agents=None, ready_agents=None,
  oldest_waiting=None) -> list[DialOrder]``: expires what is past its
  expiry, recovers expired leases, then releases due promises per queue
  in original entry order, within the interval's capacity (booked
  promises keep the room reserved at booking). Campaign targets (mode
  ``CAMPAIGN``) are left to the promotion scheduler,
  ``callsure.engine.promotion``.
* ``start_dialing(attempt_id, owner) -> Attempt``: the gateway's
  compare-and-set before it dials. Deliberately not idempotent: a second
  call raises ``LeaseError`` and the gateway must not dial.
* ``renew_lease(attempt_id, owner) -> Attempt``.
* ``report_outcome(attempt_id, outcome, *, sit_code=None, detail="",
  agent_id=None) -> OutcomeResult``: applies the retry ladder or ends with
  an SMS request. Idempotent for the same outcome; a different outcome
  for a final attempt raises ``InvalidStateError``.
* ``recover(now=None) -> RecoveryReport``: run once at start.

Dial modes: each order carries ``dial_mode`` from ``PromisePolicy``. In
``AGENT_FIRST`` the host reserves an agent first
(``AgentRoster.reserve(order.attempt_id, ...)``, with ``agent_id`` set to
``order.target.agent_id`` for a VIP) and reports ``NOT_DIALED`` when none
is free; the promise then goes back in line without losing its place or
counting an attempt. In ``CUSTOMER_FIRST`` the gateway dials at once and
the agent is found once a person answers.

Events and administration:

* ``read_events(after_seq, limit) -> list[Event]``, for a resumable stream
  (phone numbers masked in payloads). Kinds: see
  ``callsure.engine.store.journal`` (``callback.created``, ``.updated``,
  ``.released``, ``.retry_scheduled``, ``.completed``, ``.failed``,
  ``.expired``, ``.cancelled``, ``.dropped``, ``.overdue``,
  ``attempt.dialing``, ``.lease_renewed``, ``.outcome``,
  ``.lease_expired``, ``.late_outcome``, ``sms.requested``,
  ``policy.changed``).
* ``set_calendar(queue, calendar)`` (``"*"`` for every queue),
  ``set_retry_policy``, ``set_sms_policy``, ``set_capacity_limits``,
  ``set_promise_policy``, ``set_grade_rules``, ``set_repeat_caller_rule``;
  each is stored and journaled, and survives a restart.

Leases
------
``due`` issues an attempt in state ISSUED with a lease. The gateway calls
``start_dialing`` (durable, ISSUED -> DIALING) and only then dials; it
renews the lease during the call and reports one outcome. When a lease
expires, recovery (inside every ``due`` and ``recover``) finalises the
attempt: an ISSUED attempt never started dialing, so it ends as
``NOT_DIALED`` and does not count; a DIALING attempt ends as ``UNKNOWN``
and the retry ladder decides the next attempt. A new attempt always has a
new number and key, so the same attempt is never dialed twice, and the
store's unique index keeps one attempt in flight per promise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from callsure.engine import paging
from callsure.engine import policy as policies
from callsure.engine.administration import SchedulerAdministration
from callsure.engine.callbacks import (
    Attempt,
    AttemptState,
    Callback,
    CallbackMode,
    CallbackRequest,
    CallbackState,
    DialOrder,
    DialTarget,
    Event,
    Outcome,
    OutcomeResult,
    SitCode,
)
from callsure.engine.customers import (
    GradeRules,
    RepeatCallerRule,
)
from callsure.engine.exceptions import (
    InvalidStateError,
    LeaseError,
    NotFoundError,
    RequestIdReusedError,
    ValidationError,
)
from callsure.engine.outcomes import OutcomeHandler
from callsure.engine.phone import mask_number, parse_e164
from callsure.engine.planning import PromisePlanner
from callsure.engine.store import journal
from callsure.engine.store.interface import CallbackStore, Change
from callsure.engine.windows import CallbackCalendar

if TYPE_CHECKING:
    from callsure.engine.clock import Clock
    from callsure.engine.predictor import WaitPredictor

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
# Rows handled per transaction by expiry and lease recovery, so one call
# after a long outage does not hold the write lock for minutes.
RECOVERY_BATCH = 1000
# How often ``due`` looks for pending promises past their time plus
# ``overdue_grace_s`` that nothing released, in seconds of the clock.
OVERDUE_CHECK_S = 60.0
# Promises journaled overdue while pending that are remembered, so each is
# journaled once; the memory is cleared past this many.
OVERDUE_MEMORY = 100_000


@dataclass(frozen=True)
class RecoveryReport:
    """Counts from one ``recover`` run."""

    leases_expired: int
    not_dialed: int
    unknown_outcomes: int
    overdue: int
    expired: int


class CallbackScheduler(SchedulerAdministration):
    """Callback promises: creation, release, outcomes, recovery.

    Parameters
    ----------
    store : CallbackStore
    predictor : WaitPredictor
    clock : Clock
    policy : SchedulerPolicy or None
        Defaults; admin changes stored earlier in ``store`` win over it.
    """

    def __init__(
        self,
        store: CallbackStore,
        predictor: WaitPredictor,
        clock: Clock,
        policy: policies.SchedulerPolicy | None = None,
    ):
        self.store = store
        self.predictor = predictor
        self.clock = clock
        self.policy = policy or policies.SchedulerPolicy()
        self.calendars: dict[str, CallbackCalendar] = {
            "*": CallbackCalendar.always_open()
        }
        self.grade_rules = GradeRules()
        self.repeat_caller_rule = RepeatCallerRule()
        self._load_settings()
        self.planner = PromisePlanner(self)
        self.outcomes = OutcomeHandler(self)
        self._overdue_reported: set[str] = set()
        self._overdue_checked_at: datetime | None = None

    # Requests and queries

    def create(self, request: CallbackRequest) -> Callback:
        """Store a promise durably and return it; see the module docstring."""
        return self.create_or_replay(request)[0]

    def create_or_replay(self, request: CallbackRequest) -> tuple[Callback, bool]:
        """Like ``create``, and tell whether the request id was a replay."""
        existing_id = self.store.callback_for_request(request.request_id or "")
        if existing_id is not None:
            stored = self.store.request_fingerprint(request.request_id)
            # Ids stored before fingerprints existed have none and replay as
            # before.
            if stored is not None and stored != _request_fingerprint(request):
                raise RequestIdReusedError(request.request_id)
            return self.get(existing_id), True
        now = self.clock.now()
        open_callback = self.store.open_callback_for(request.customer_id, request.queue)
        replacing = ""
        if open_callback is not None and open_callback.state is CallbackState.PENDING:
            replacing = open_callback.callback_id
        plan = self.planner.plan(request, now, replacing=replacing)
        if open_callback is not None:
            return self._merge(open_callback, request, plan, now), False

        callback_id = f"cb_{int(now.timestamp() * 1000):012x}{secrets.token_hex(6)}"
        callback = Callback(
            callback_id=callback_id,
            request_id=request.request_id,
            customer_id=request.customer_id,
            queue=request.queue,
            phone_number=plan.phone_number,
            mode=request.mode,
            entry_time=plan.entry_time,
            created_at=now,
            promised_time=plan.promised_time,
            window_end=plan.window_end,
            not_before=plan.not_before,
            expires_at=plan.expires_at,
            grade=request.grade,
            priority=request.priority,
            dedicated_agent_id=request.dedicated_agent_id,
            fallback_at=plan.fallback_at,
            ivr_history=tuple(request.ivr_history),
            language=request.language,
            updated_at=now,
            **_requested_window(request),
        )
        change = Change(
            callbacks=[callback],
            requests=[(request.request_id, callback_id, _request_fingerprint(request))],
        )
        change.event(
            now, journal.CALLBACK_CREATED, callback_id, callback=callback.to_row()
        )
        self._commit_create(change, request)
        logger.debug(
            "callback %s: created for %s in queue %s, mode %s, due %s",
            callback_id,
            mask_number(callback.phone_number),
            callback.queue,
            callback.mode.value,
            callback.not_before.isoformat(),
        )
        return callback, False

    def _merge(
        self, callback: Callback, request: CallbackRequest, plan, now: datetime
    ) -> Callback:
        """Apply a second request of the same customer and queue."""
        fingerprint = _request_fingerprint(request)
        change = Change(
            requests=[(request.request_id, callback.callback_id, fingerprint)]
        )
        if callback.state is CallbackState.DIALING:
            # The dial in flight keeps its promise, so the request gets the
            # current promise back rather than changing a call in progress.
            self._commit_create(change, request)
            return callback
        # The request carries the customer's current grading, so an agent who
        # no longer has the customer stops being the callback's target.
        dedicated = request.dedicated_agent_id
        fallback_at = plan.fallback_at
        if dedicated and fallback_at is None:
            fallback_at = plan.not_before + timedelta(
                seconds=self.policy.promise.dedicated_fallback_s
            )
        updated = callback.evolve(
            now,
            phone_number=plan.phone_number,
            mode=request.mode,
            entry_time=min(callback.entry_time, plan.entry_time),
            promised_time=plan.promised_time,
            window_end=plan.window_end,
            not_before=plan.not_before,
            expires_at=plan.expires_at,
            grade=request.grade,
            priority=max(callback.priority, request.priority),
            dedicated_agent_id=dedicated,
            fallback_at=fallback_at,
            ivr_history=tuple(request.ivr_history) or callback.ivr_history,
            language=request.language,
            **_requested_window(request),
        )
        change.callbacks.append(updated)
        change.event(
            now,
            journal.CALLBACK_UPDATED,
            callback.callback_id,
            callback=updated.to_row(),
            request_id=request.request_id,
        )
        self._commit_create(change, request)
        logger.info(
            "callback %s: updated by request %s",
            callback.callback_id,
            request.request_id,
        )
        return updated

    def _commit_create(self, change: Change, request: CallbackRequest) -> None:
        try:
            self.store.commit(change)
        except LeaseError:
            # A concurrent create with the same request id won, and its
            # result is the result of this replay too.
            if self.store.callback_for_request(request.request_id) is None:
                raise

    def get(self, callback_id: str) -> Callback:
        callback = self.store.get_callback(callback_id)
        if callback is None:
            raise NotFoundError("callback", callback_id)
        return callback

    def attempts(self, callback_id: str) -> list[Attempt]:
        self.get(callback_id)
        return self.store.attempts_of(callback_id)

    def list(
        self,
        *,
        state: CallbackState | str | None = None,
        customer_id: str | None = None,
        queue: str | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[Callback], str]:
        """Return a page of callbacks by ascending id, and the token of the
        next page ("" after the last page)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValidationError("page_size", page_size, f"send 1 to {MAX_PAGE_SIZE}")
        if isinstance(state, str) and state:
            try:
                state = CallbackState(state)
            except ValueError:
                names = ", ".join(s.value for s in CallbackState)
                raise ValidationError("state", state, f"send one of {names}") from None
        filters = (state.value if state else None, customer_id or None, queue or None)
        items = self.store.list_callbacks(
            state=filters[0],
            customer_id=filters[1],
            queue=filters[2],
            limit=page_size + 1,
            after_id=paging.after_id("ListCallbacks", page_token, *filters),
        )
        if len(items) > page_size:
            items = items[:page_size]
            last = items[-1].callback_id
            return items, paging.page_token("ListCallbacks", last, *filters)
        return items, ""

    def cancel(self, callback_id: str, reason: str = "cancelled") -> Callback:
        return self._stop(self.get(callback_id), CallbackState.CANCELLED, reason)

    def customer_reached_agent(
        self, customer_id: str, queue: str | None, when: datetime
    ) -> list[Callback]:
        """Drop open promises of a customer who reached an agent at ``when``."""
        queues = [queue] if queue else self._queues_of(customer_id)
        dropped = []
        for name in queues:
            callback = self.store.open_callback_for(customer_id, name)
            if callback is None or when < callback.created_at:
                continue
            reason = f"customer reached an agent of {name} at {when.isoformat()}"
            dropped.append(self._stop(callback, CallbackState.DROPPED, reason))
        return dropped

    def _queues_of(self, customer_id: str) -> list[str]:
        items = self.store.list_callbacks(
            state=None, customer_id=customer_id, queue=None, limit=1000, after_id=None
        )
        return sorted({c.queue for c in items if not c.state.is_final})

    def _stop(self, callback: Callback, state: CallbackState, reason: str) -> Callback:
        now = self.clock.now()
        kind = (
            journal.CALLBACK_CANCELLED
            if state is CallbackState.CANCELLED
            else journal.CALLBACK_DROPPED
        )
        if callback.state is state:
            return callback
        if callback.state.is_final:
            raise InvalidStateError(
                f"callback {callback.callback_id} is already {callback.state.value}; "
                f"it cannot become {state.value}"
            )
        if callback.state is CallbackState.DIALING:
            updated = callback.evolve(now, pending_stop=f"{state.value}:{reason}")
        else:
            updated = callback.evolve(now, state=state, reason=reason)
        change = Change(callbacks=[updated])
        change.event(
            now, kind, callback.callback_id, callback=updated.to_row(), reason=reason
        )
        self.store.commit(change)
        logger.info("callback %s: %s (%s)", callback.callback_id, state.value, reason)
        return updated

    # Dialing

    def due(
        self,
        now: datetime | None = None,
        *,
        free_agents: dict[str, int] | None = None,
        ready_agents: set[str] | frozenset[str] | None = None,
        oldest_waiting: dict[str, datetime] | None = None,
    ) -> list[DialOrder]:
        """Release due promises as dial orders.

        Parameters
        ----------
        now : datetime or None
            Defaults to the clock.
        free_agents : dict[str, int] or None
            Free agents per queue from the agent pools; releases of a queue
            never exceed it. ``None`` trusts the predictor's capacity only.
        ready_agents : set of str or None
            Agents ready now. A VIP's callback waits for its dedicated agent
            while that agent is not in this set, until ``fallback_at``.
            ``None`` assumes every agent ready.
        oldest_waiting : dict[str, datetime] or None
            Entry time of the longest-waiting inbound caller per queue; a
            callback that entered later is held so it does not overtake.

        Notes
        -----
        Within a queue, promises are released in original entry order:
        a promise is never released while a due one with an earlier entry
        time is held, except one held for its dedicated agent. A due timed
        promise is released whatever the capacity recomputed since its
        booking, within the admin cap and ``free_agents``; an ``ASAP``
        promise only into the spare capacity of the interval, or when a due
        timed promise that entered after it would otherwise be held (see
        ``callsure.engine.planning``).
        """
        now = now or self.clock.now()
        self.housekeep(now)
        orders: list[DialOrder] = []
        for queue in self.store.due_queues(self.due_by(now)):
            orders.extend(
                self._release_queue(
                    queue, now, free_agents, ready_agents, oldest_waiting or {}
                )
            )
        return orders

    def housekeep(self, now: datetime | None = None) -> int:
        """Expire promises past their expiry, finalise expired leases and
        journal overdue promises, without releasing anything.

        ``due`` runs this first. The coordinator runs it alone while no
        gateway is registered, so that a promise still ends visibly at its
        expiry. Returns how many records it changed or journaled.
        """
        now = now or self.clock.now()
        count = self._expire_pending(now)
        count += sum(self._recover_leases(now))
        return count + self._watch_overdue(now)

    def _release_queue(
        self,
        queue: str,
        now: datetime,
        free_agents: dict[str, int] | None,
        ready_agents,
        oldest_waiting: dict[str, datetime],
    ) -> list[DialOrder]:
        admin_room, spare = self.planner.release_room(queue, now)
        limit = admin_room
        if free_agents is not None and queue in free_agents:
            limit = min(limit, free_agents[queue])
        if limit <= 0 or not self.calendar_for(queue).is_open(now):
            return []

        change = Change()
        orders = []
        fetch = int(min(limit, MAX_PAGE_SIZE)) + 100
        due = self.store.due_callbacks(queue, self.due_by(now), fetch)
        # A timed promise has its room reserved by its booking (and keeps it
        # for retries), so a lower recomputed capacity never holds it. A
        # promise without a booking needs spare capacity, unless a booked
        # one behind it in entry order is due: holding it would hold that
        # booking too, because nobody who waited longer is overtaken.
        last_booked = max(
            (i for i, c in enumerate(due) if c.promised_time is not None), default=-1
        )
        for index, callback in enumerate(due):
            if len(orders) >= limit:
                break
            oldest = oldest_waiting.get(queue)
            if oldest is not None and callback.entry_time > oldest:
                break
            booked = callback.promised_time is not None
            if not booked and spare <= 0 and index > last_booked:
                break
            target = self.dial_target(callback, now, ready_agents)
            if target is None:
                continue
            if not booked:
                spare -= 1
            orders.append(self.issue(callback, target, now, change))
        if orders:
            self.store.commit(change)
        return orders

    def due_by(self, now: datetime) -> datetime:
        """Latest ``not_before`` a promise released at ``now`` may have."""
        return now + timedelta(seconds=self.policy.promise.dial_lead_s)

    def dial_target(
        self, callback: Callback, now: datetime, ready_agents
    ) -> DialTarget | None:
        """Return where a released ``callback`` is bridged, or ``None`` while
        it waits for its dedicated agent (see ``due``)."""
        agent = callback.dedicated_agent_id
        fallback_at = callback.fallback_at
        if agent is None or fallback_at is None or now >= fallback_at:
            return DialTarget(callback.queue)
        if ready_agents is None or agent in ready_agents:
            return DialTarget(callback.queue, agent)
        return None

    def issue(
        self, callback: Callback, target: DialTarget, now: datetime, change: Change
    ) -> DialOrder:
        """Add a new leased attempt of ``callback`` to ``change`` and return
        its order; the caller commits ``change`` before handing it out."""
        number = callback.last_attempt + 1
        lease_expires_at = now + timedelta(seconds=self.policy.promise.lease_s)
        attempt = Attempt(
            attempt_id=f"{callback.callback_id}/{number}",
            callback_id=callback.callback_id,
            queue=callback.queue,
            number=number,
            state=AttemptState.ISSUED,
            issued_at=now,
            lease_expires_at=lease_expires_at,
            agent_id=target.agent_id,
        )
        updated = callback.evolve(now, state=CallbackState.DIALING, last_attempt=number)
        change.callbacks.append(updated)
        change.attempts.append((attempt, None))
        change.event(
            now,
            journal.CALLBACK_RELEASED,
            callback.callback_id,
            callback=updated.to_row(),
            attempt=attempt.to_row(),
        )
        due_at = callback.promised_time or callback.not_before
        late_s = (now - max(due_at, callback.not_before)).total_seconds()
        if (
            late_s > self.policy.promise.overdue_grace_s
            and callback.callback_id not in self._overdue_reported
        ):
            change.event(
                now,
                journal.CALLBACK_OVERDUE,
                callback.callback_id,
                late_s=late_s,
                promised_time=due_at.timestamp(),
            )
            logger.warning(
                "callback %s: released %.0f s after its time",
                callback.callback_id,
                late_s,
            )
        return DialOrder(
            attempt_id=attempt.attempt_id,
            idempotency_key=attempt.idempotency_key,
            callback_id=callback.callback_id,
            customer_id=callback.customer_id,
            phone_number=callback.phone_number,
            attempt_number=number,
            lease_expires_at=lease_expires_at,
            target=target,
            dial_mode=self.policy.promise.dial_mode_for(callback.queue),
            priority=callback.priority,
            grade=callback.grade,
            entry_time=callback.entry_time,
            promised_time=callback.promised_time,
            ivr_history=callback.ivr_history,
            language=callback.language,
            campaign_id=callback.campaign_id,
        )

    def start_dialing(self, attempt_id: str, owner: str) -> Attempt:
        """Claim an issued attempt for dialing; see "Leases" above.

        Raises
        ------
        LeaseError
            When the attempt is not ISSUED (already dialing, final) or its
            lease expired: the caller must not dial.
        """
        now = self.clock.now()
        attempt = self._attempt(attempt_id)
        if attempt.state is not AttemptState.ISSUED or now >= attempt.lease_expires_at:
            raise LeaseError(
                f"attempt {attempt_id} is {attempt.state.value} with lease until "
                f"{attempt.lease_expires_at.isoformat()}; do not dial it"
            )
        claimed = replace(
            attempt,
            state=AttemptState.DIALING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=self.policy.promise.lease_s),
        )
        change = Change(attempts=[(claimed, AttemptState.ISSUED)])
        change.event(
            now, journal.ATTEMPT_DIALING, attempt.callback_id, attempt=claimed.to_row()
        )
        self.store.commit(change)
        return claimed

    def renew_lease(self, attempt_id: str, owner: str) -> Attempt:
        """Extend the lease of an attempt held by ``owner``."""
        now = self.clock.now()
        attempt = self._attempt(attempt_id)
        if (
            attempt.state is not AttemptState.DIALING
            or attempt.lease_owner != owner
            or now >= attempt.lease_expires_at
        ):
            raise LeaseError(
                f"attempt {attempt_id} is not dialing under a live lease of {owner!r}"
            )
        renewed = replace(
            attempt,
            lease_expires_at=now + timedelta(seconds=self.policy.promise.lease_s),
        )
        change = Change(attempts=[(renewed, AttemptState.DIALING)])
        change.event(
            now,
            journal.ATTEMPT_LEASE_RENEWED,
            attempt.callback_id,
            attempt=renewed.to_row(),
        )
        self.store.commit(change)
        return renewed

    def _attempt(self, attempt_id: str) -> Attempt:
        attempt = self.store.get_attempt(attempt_id)
        if attempt is None:
            raise NotFoundError("attempt", attempt_id)
        return attempt

    def report_outcome(
        self,
        attempt_id: str,
        outcome: Outcome | str,
        *,
        sit_code: SitCode | str | None = None,
        detail: str = "",
        agent_id: str | None = None,
    ) -> OutcomeResult:
        """Record the outcome of an attempt and decide what follows."""
        outcome = _enum(Outcome, outcome, "outcome")
        sit_code = _enum(SitCode, sit_code, "sit_code") if sit_code else None
        attempt = self._attempt(attempt_id)
        callback = self.get(attempt.callback_id)
        if attempt.state is AttemptState.FINAL:
            return self._replayed_outcome(attempt, callback, outcome, sit_code, detail)
        if outcome is Outcome.NOT_DIALED and attempt.state is not AttemptState.ISSUED:
            raise InvalidStateError(
                f"attempt {attempt_id} started dialing; report what the dial "
                "produced, not not_dialed"
            )
        return self.outcomes.finish(
            attempt, callback, outcome, sit_code, detail, agent_id, self.clock.now()
        )

    def _replayed_outcome(
        self,
        attempt: Attempt,
        callback: Callback,
        outcome: Outcome,
        sit_code: SitCode | None,
        detail: str,
    ) -> OutcomeResult:
        if attempt.outcome is outcome and attempt.sit_code is sit_code:
            next_at = (
                callback.not_before if callback.state is CallbackState.PENDING else None
            )
            return OutcomeResult(callback, attempt, next_at, None)
        if attempt.outcome is Outcome.UNKNOWN:
            return self.outcomes.late(
                attempt, callback, outcome, detail, self.clock.now()
            )
        raise InvalidStateError(
            f"attempt {attempt.attempt_id} already ended as {attempt.outcome.value}; "
            f"{outcome.value} cannot replace it"
        )

    # Expiry and recovery

    def recover(self, now: datetime | None = None) -> RecoveryReport:
        """Bring the store to a consistent state after a start.

        Expired leases are finalised (see "Leases"). Promises past their
        expiry end as EXPIRED with an SMS request. Promises already past
        their time are journaled as overdue, and ``due`` then releases them
        in entry order within capacity.
        """
        now = now or self.clock.now()
        not_dialed, unknown = self._recover_leases(now)
        expired = self._expire_pending(now)
        overdue = self._mark_overdue(now)
        report = RecoveryReport(
            not_dialed + unknown, not_dialed, unknown, overdue, expired
        )
        logger.info(
            "scheduler: recovered at %s: %d leases expired (%d not dialed, %d "
            "unknown), %d overdue, %d expired",
            now.isoformat(),
            report.leases_expired,
            not_dialed,
            unknown,
            overdue,
            expired,
        )
        return report

    def _recover_leases(self, now: datetime) -> tuple[int, int]:
        not_dialed = unknown = 0
        while True:
            attempts = self.store.expired_leases(now, RECOVERY_BATCH)
            if not attempts:
                return not_dialed, unknown
            for attempt in attempts:
                callback = self.get(attempt.callback_id)
                if attempt.state is AttemptState.ISSUED:
                    outcome, not_dialed = Outcome.NOT_DIALED, not_dialed + 1
                else:
                    outcome, unknown = Outcome.UNKNOWN, unknown + 1
                logger.warning(
                    "callback %s: lease of attempt %s expired while %s; recorded %s",
                    attempt.callback_id,
                    attempt.attempt_id,
                    attempt.state.value,
                    outcome.value,
                )
                self.outcomes.finish(
                    attempt,
                    callback,
                    outcome,
                    None,
                    "lease expired",
                    None,
                    now,
                    lease_expired=True,
                )

    def _expire_pending(self, now: datetime) -> int:
        count = 0
        while True:
            callbacks = self.store.expired_pending(now, RECOVERY_BATCH)
            if not callbacks:
                return count
            change = Change()
            for callback in callbacks:
                # A campaign target was promised nothing, so the end of its
                # campaign sends no SMS; a failed ladder still does.
                campaign = callback.mode is CallbackMode.CAMPAIGN
                self.outcomes.end(
                    callback,
                    CallbackState.EXPIRED,
                    "campaign ended before the target was called"
                    if campaign
                    else "expired before it could be kept",
                    now,
                    change,
                    sms=not campaign,
                )
            self.store.commit(change)
            count += len(callbacks)

    def _watch_overdue(self, now: datetime) -> int:
        """Journal pending promises that went past their time unreleased.

        Nothing may release them (no gateway dials, no agent is free), so
        each gets one overdue event and the log one warning per check.
        Returns how many it journaled.
        """
        checked = self._overdue_checked_at
        if checked is not None and (now - checked).total_seconds() < OVERDUE_CHECK_S:
            return 0
        self._overdue_checked_at = now
        count = self._mark_overdue(now)
        if count:
            logger.warning(
                "%d callbacks are pending more than %.0f s past their time, so "
                "check that a gateway dials and that agents are ready",
                count,
                self.policy.promise.overdue_grace_s,
            )
        return count

    def _mark_overdue(self, now: datetime) -> int:
        """Journal each pending promise past its time plus the grace, once."""
        grace = timedelta(seconds=self.policy.promise.overdue_grace_s)
        if len(self._overdue_reported) > OVERDUE_MEMORY:
            self._overdue_reported.clear()
        count, after = 0, None
        while True:
            page = self.store.overdue_pending(now - grace, RECOVERY_BATCH, after)
            if not page:
                return count
            after = page[-1].callback_id
            page = [c for c in page if c.callback_id not in self._overdue_reported]
            if not page:
                continue
            change = Change()
            for callback in page:
                self._overdue_reported.add(callback.callback_id)
                due_at = callback.promised_time or callback.not_before
                change.event(
                    now,
                    journal.CALLBACK_OVERDUE,
                    callback.callback_id,
                    late_s=(now - due_at).total_seconds(),
                    promised_time=due_at.timestamp(),
                )
            self.store.commit(change)
            count += len(page)

    # Events

    def read_events(self, after_seq: int = 0, limit: int = 100) -> list[Event]:
        """Journal events after ``after_seq``, phone numbers masked."""
        if after_seq < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
            raise ValidationError(
                "after_seq/limit",
                (after_seq, limit),
                f"send after_seq >= 0 and limit 1 to {MAX_PAGE_SIZE}",
            )
        return [_masked(event) for event in self.store.read_events(after_seq, limit)]


def _enum(kind, value, field: str):
    if isinstance(value, kind):
        return value
    try:
        return kind(value)
    except ValueError:
        names = ", ".join(item.value for item in kind)
        raise ValidationError(field, value, f"send one of {names}") from None


def _masked(event: Event) -> Event:
    row = event.payload.get("callback")
    if row is None or "phone_number" not in row:
        return event
    payload = dict(event.payload)
    payload["callback"] = {**row, "phone_number": mask_number(row["phone_number"])}
    return replace(event, payload=payload)


def interval_start(when: datetime, interval_s: float) -> datetime:
    """Start of the capacity interval containing ``when``, aligned to the epoch."""
    seconds = math.floor(when.timestamp() / interval_s) * interval_s
    return datetime.fromtimestamp(seconds, UTC)


def _request_fingerprint(request: CallbackRequest) -> bytes:
    """Digest of the fields that say which callback a request asks for.

    The store records it with the request id in the same transaction, so
    a replay can tell a retry from a different request. A digest rather
    than the fields keeps the phone number out of the requests table in
    clear.
    """
    try:
        phone = parse_e164(request.phone_number)
    except ValidationError:
        phone = str(request.phone_number)

    def instant(value: datetime | None) -> str | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.isoformat()
        return value.astimezone(UTC).isoformat()

    mode = getattr(request.mode, "value", request.mode)
    fields = [
        request.customer_id,
        phone,
        request.queue,
        str(mode),
        instant(request.requested_time),
        instant(request.requested_local_time),
        request.time_zone,
        request.window_date.isoformat() if request.window_date else None,
        request.window_period,
    ]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest().encode()


def _requested_window(request: CallbackRequest) -> dict:
    """Return the request's zone and window as the callback stores them."""
    return {
        "time_zone": request.time_zone,
        "window_date": (
            request.window_date.isoformat() if request.window_date else None
        ),
        "window_period": request.window_period,
    }

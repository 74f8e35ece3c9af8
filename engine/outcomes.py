"""Applying dial outcomes: the retry ladder, final states and SMS requests.

``OutcomeHandler`` is the part of the scheduler that finalises attempts.
A retry is scheduled only in the transaction that makes the previous
attempt final, so no retry exists before the previous attempt's outcome.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from callsure.engine.callbacks import (
    Attempt,
    AttemptState,
    Callback,
    CallbackMode,
    CallbackState,
    Outcome,
    OutcomeResult,
    SitCode,
)
from callsure.engine.phone import mask_number
from callsure.engine.policy import number_is_bad
from callsure.engine.store import journal
from callsure.engine.store.interface import Change

if TYPE_CHECKING:
    from callsure.engine.scheduler import CallbackScheduler

logger = logging.getLogger(__name__)

_END_EVENTS = {
    CallbackState.COMPLETED: journal.CALLBACK_COMPLETED,
    CallbackState.FAILED: journal.CALLBACK_FAILED,
    CallbackState.EXPIRED: journal.CALLBACK_EXPIRED,
    CallbackState.CANCELLED: journal.CALLBACK_CANCELLED,
    CallbackState.DROPPED: journal.CALLBACK_DROPPED,
}


class OutcomeHandler:
    """Finalises attempts and callbacks for a ``CallbackScheduler``."""

    def __init__(self, scheduler: CallbackScheduler):
        self.scheduler = scheduler

    def finish(
        self,
        attempt: Attempt,
        callback: Callback,
        outcome: Outcome,
        sit_code: SitCode | None,
        detail: str,
        agent_id: str | None,
        now: datetime,
        *,
        lease_expired: bool = False,
    ) -> OutcomeResult:
        """Make ``attempt`` final with ``outcome`` and decide what follows."""
        final = replace(
            attempt,
            state=AttemptState.FINAL,
            outcome=outcome,
            sit_code=sit_code,
            detail=detail,
            agent_id=agent_id or attempt.agent_id,
            finished_at=now,
        )
        change = Change(attempts=[(final, attempt.state)])
        kind = (
            journal.ATTEMPT_LEASE_EXPIRED if lease_expired else journal.ATTEMPT_OUTCOME
        )
        change.event(now, kind, callback.callback_id, attempt=final.to_row())

        updated, next_at, sms_text = self._decide(
            callback, outcome, sit_code, now, change
        )
        self.scheduler.store.commit(change)
        logger.info(
            "callback %s: attempt %d ended %s%s; callback %s",
            callback.callback_id,
            attempt.number,
            outcome.value,
            f" ({sit_code.value})" if sit_code else "",
            updated.state.value,
        )
        return OutcomeResult(updated, final, next_at, sms_text)

    def _decide(
        self,
        callback: Callback,
        outcome: Outcome,
        sit_code: SitCode | None,
        now: datetime,
        change: Change,
    ) -> tuple[Callback, datetime | None, str | None]:
        counts = dict(callback.outcome_counts)
        attempts = callback.attempts
        if outcome is not Outcome.NOT_DIALED:
            counts[outcome.value] = counts.get(outcome.value, 0) + 1
            attempts += 1
        callback = replace(callback, attempts=attempts, outcome_counts=counts)

        if outcome is Outcome.CONNECTED:
            updated, _ = self.end(
                callback, CallbackState.COMPLETED, "connected", now, change
            )
            return updated, None, None

        if callback.pending_stop:
            state_name, _, reason = callback.pending_stop.partition(":")
            updated, _ = self.end(
                callback, CallbackState(state_name), reason, now, change
            )
            return updated, None, None

        if outcome is Outcome.NOT_DIALED:
            # Not an attempt: the promise goes back in line at its place.
            return self._retry(callback, now, now, "not dialed", change), now, None

        policy = self.scheduler.policy
        delay = policy.retry.next_delay(
            outcome, sit_code, counts[outcome.value], attempts
        )
        if delay is not None:
            calendar = self.scheduler.calendar_for(callback.queue)
            next_at = calendar.next_open(now + _seconds(delay))
            if next_at is not None and next_at < callback.expires_at:
                reason = f"retry after {outcome.value}"
                return (
                    self._retry(callback, next_at, now, reason, change),
                    next_at,
                    None,
                )

        bad = number_is_bad(outcome, sit_code)
        reason = f"last attempt ended {outcome.value}"
        if sit_code is not None:
            reason += f" ({sit_code.value})"
        if bad:
            reason = f"number unreachable: {reason}"
        sms = not bad or policy.sms.on_bad_number
        updated, text = self.end(
            callback, CallbackState.FAILED, reason, now, change, sms=sms
        )
        return updated, None, text

    def _retry(
        self, callback: Callback, next_at: datetime, now: datetime, reason: str, change
    ) -> Callback:
        updated = callback.evolve(
            now, state=CallbackState.PENDING, not_before=next_at, reason=reason
        )
        change.callbacks.append(updated)
        change.event(
            now,
            journal.CALLBACK_RETRY_SCHEDULED,
            callback.callback_id,
            callback=updated.to_row(),
            next_attempt_at=next_at.timestamp(),
        )
        return updated

    def end(
        self,
        callback: Callback,
        state: CallbackState,
        reason: str,
        now: datetime,
        change: Change,
        *,
        sms: bool = False,
    ) -> tuple[Callback, str | None]:
        """Move ``callback`` to a final state in ``change``; with ``sms``,
        also request an SMS unless the callback is the target of a campaign
        that sends none. Returns the callback and the SMS text."""
        updated = callback.evolve(now, state=state, reason=reason, pending_stop="")
        change.callbacks.append(updated)
        change.event(
            now, _END_EVENTS[state], callback.callback_id, callback=updated.to_row()
        )
        text = self._sms_text(updated) if sms else None
        if text is None:
            return updated, None
        # The event carries the masked number; the sender reads the full
        # number from the store by callback id.
        change.event(
            now,
            journal.SMS_REQUESTED,
            callback.callback_id,
            masked_number=mask_number(callback.phone_number),
            text=text,
            language=callback.language,
            reason=reason,
        )
        logger.info(
            "callback %s: SMS requested to %s (%s)",
            callback.callback_id,
            mask_number(callback.phone_number),
            reason,
        )
        return updated, text

    def _sms_text(self, callback: Callback) -> str | None:
        if callback.mode is CallbackMode.CAMPAIGN:
            # A campaign target was called about the campaign, not about a
            # request of the customer, so it gets the campaign's text.
            campaign = self.scheduler.store.get_campaign(callback.campaign_id)
            if campaign is None:
                return None
            return campaign.render_sms(callback.callback_id)
        calendar = self.scheduler.calendar_for(callback.queue)
        promised = callback.promised_time or callback.not_before
        local = promised.astimezone(calendar.zone).strftime("%H:%M")
        return self.scheduler.policy.sms.render(
            callback.language,
            queue=callback.queue,
            promised_time=local,
            callback_id=callback.callback_id,
            reason=callback.reason,
        )

    def late(
        self,
        attempt: Attempt,
        callback: Callback,
        outcome: Outcome,
        detail: str,
        now: datetime,
    ) -> OutcomeResult:
        """Record an outcome that arrived after the lease expired.

        The attempt stays ``UNKNOWN``. A late ``CONNECTED`` completes the
        promise when no later attempt is in flight, because the customer
        did reach an agent.
        """
        change = Change()
        change.event(
            now,
            journal.ATTEMPT_LATE_OUTCOME,
            callback.callback_id,
            attempt_id=attempt.attempt_id,
            outcome=outcome.value,
            detail=detail,
        )
        updated = callback
        store = self.scheduler.store
        if (
            outcome is Outcome.CONNECTED
            and not callback.state.is_final
            and store.open_attempt(callback.callback_id) is None
        ):
            updated, _ = self.end(
                callback,
                CallbackState.COMPLETED,
                "connected (late report)",
                now,
                change,
            )
        store.commit(change)
        logger.warning(
            "callback %s: outcome %s of attempt %s arrived after its lease expired",
            callback.callback_id,
            outcome.value,
            attempt.attempt_id,
        )
        return OutcomeResult(updated, attempt, None, None)


def _seconds(value: float) -> timedelta:
    return timedelta(seconds=value)

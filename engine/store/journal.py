"""The append-only event journal: event kinds and their msgpack encoding.

Every state change of a promise, an attempt or a policy is one event,
written in the same transaction as the current-state rows it explains.
Payloads are msgpack maps of built-in values (datetimes as UTC epoch
seconds). Callback events carry the full callback row, attempt events the
full attempt row, so ``rebuild_rows`` can recreate the current state from
the journal alone.
"""

from __future__ import annotations

import msgpack

from callsure.engine.exceptions import StorageError

# Event kinds. A consumer of the event stream can rely on these names.
CALLBACK_CREATED = "callback.created"
CALLBACK_UPDATED = "callback.updated"
CALLBACK_CANCELLED = "callback.cancelled"
CALLBACK_DROPPED = "callback.dropped"
CALLBACK_RETRY_SCHEDULED = "callback.retry_scheduled"
CALLBACK_RELEASED = "callback.released"
CALLBACK_COMPLETED = "callback.completed"
CALLBACK_FAILED = "callback.failed"
CALLBACK_EXPIRED = "callback.expired"
CALLBACK_OVERDUE = "callback.overdue"
ATTEMPT_DIALING = "attempt.dialing"
ATTEMPT_LEASE_RENEWED = "attempt.lease_renewed"
ATTEMPT_OUTCOME = "attempt.outcome"
ATTEMPT_LEASE_EXPIRED = "attempt.lease_expired"
ATTEMPT_LATE_OUTCOME = "attempt.late_outcome"
SMS_REQUESTED = "sms.requested"
POLICY_CHANGED = "policy.changed"
CAMPAIGN_CREATED = "campaign.created"
CAMPAIGN_STARTED = "campaign.started"
CAMPAIGN_PAUSED = "campaign.paused"
CAMPAIGN_FINISHED = "campaign.finished"

EVENT_KINDS = frozenset(
    {
        CALLBACK_CREATED,
        CALLBACK_UPDATED,
        CALLBACK_CANCELLED,
        CALLBACK_DROPPED,
        CALLBACK_RETRY_SCHEDULED,
        CALLBACK_RELEASED,
        CALLBACK_COMPLETED,
        CALLBACK_FAILED,
        CALLBACK_EXPIRED,
        CALLBACK_OVERDUE,
        ATTEMPT_DIALING,
        ATTEMPT_LEASE_RENEWED,
        ATTEMPT_OUTCOME,
        ATTEMPT_LEASE_EXPIRED,
        ATTEMPT_LATE_OUTCOME,
        SMS_REQUESTED,
        POLICY_CHANGED,
        CAMPAIGN_CREATED,
        CAMPAIGN_STARTED,
        CAMPAIGN_PAUSED,
        CAMPAIGN_FINISHED,
    }
)


def encode_payload(payload: dict) -> bytes:
    """Encode an event payload; raise ``StorageError`` on a non-msgpack value."""
    try:
        return msgpack.packb(payload, use_bin_type=True)
    except (TypeError, ValueError) as error:
        raise StorageError(f"event payload cannot be encoded: {error}") from error


def decode_payload(data: bytes) -> dict:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, ValueError) as error:
        raise StorageError(f"event payload is corrupt: {error}") from error


def rebuild_rows(events) -> tuple[dict[str, dict], dict[str, dict]]:
    """Replay events into the last callback row and attempt row per id.

    Parameters
    ----------
    events : iterable of Event
        In journal order.

    Returns
    -------
    callbacks, attempts : dict[str, dict]
        Rows by callback id and by attempt id.
    """
    callbacks: dict[str, dict] = {}
    attempts: dict[str, dict] = {}
    for event in events:
        callback_row = event.payload.get("callback")
        if callback_row is not None:
            callbacks[callback_row["callback_id"]] = callback_row
        attempt_row = event.payload.get("attempt")
        if attempt_row is not None:
            attempts[attempt_row["attempt_id"]] = attempt_row
    return callbacks, attempts


def rebuild_campaign_rows(events) -> dict[str, dict]:
    """Replay events into the last campaign row per campaign id.

    Campaign events carry the full campaign row under ``campaign``.
    """
    campaigns: dict[str, dict] = {}
    for event in events:
        row = event.payload.get("campaign")
        if row is not None:
            campaigns[row["campaign_id"]] = row
    return campaigns

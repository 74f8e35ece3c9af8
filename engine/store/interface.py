"""The storage interface of the callback scheduler.

A store keeps three things in one database: the current state of every
promise and attempt (tables read by the scheduler), the map from request
ids to promises (idempotency), and the append-only journal of events that
explains every change. Campaigns have a table of their own; their targets
are promises. ``commit`` writes one ``Change`` atomically and
durably: when it returns, the change survives a crash of the process and,
with the SQLite backend, of the machine (WAL with ``synchronous=FULL``).

Concurrency contract
--------------------
Writes carry optimistic guards: a callback row replaces the stored row
only when the stored version is one less, and an attempt row only when the
stored attempt is in the expected state. A failed guard raises
``LeaseError`` and writes nothing. A partial unique index allows at most
one attempt that is not final per callback.

The SQLite backend has one writer (the coordinator), and it enforces
that with an exclusive lock on ``<db>.lock`` that a second process fails
to take (``callsure.engine.store.files.WriterLock``). A PostgreSQL backend
with several coordinators must, in ``due_callbacks``, lock the rows it
returns with ``SELECT ... FOR UPDATE SKIP LOCKED`` inside the transaction
that later commits the issued attempts, so two coordinators never release
the same promise; ``expired_leases`` likewise.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from callsure.engine.callbacks import Attempt, AttemptState, Callback, Event
from callsure.engine.campaigns import Campaign


@dataclass
class Change:
    """One atomic write: rows to upsert, events to append, guards to check.

    Attributes
    ----------
    callbacks : list of Callback
        Inserted when ``version == 1``, else replace version ``version - 1``.
    attempts : list of tuple (Attempt, AttemptState or None)
        The new row and the state the stored row must have (``None``
        inserts a new attempt).
    requests : list of tuple (str, str) or (str, str, bytes)
        ``(request_id, callback_id)`` pairs to record, or
        ``(request_id, callback_id, fingerprint)`` with the digest of the
        request's fields that tells a retry from a different request.
        Recording a pair again keeps the stored fingerprint.
    events : list of tuple (datetime, str, str, dict)
        ``(time, kind, callback_id, payload)`` to append in order.
    settings : dict[str, bytes]
        Named settings (admin policies) to replace.
    campaigns : list of Campaign
        Inserted when ``version == 1``, else replace version ``version - 1``.
    reached : list of tuple (str, datetime)
        ``(customer_id, time)``: the customer reached an agent at that
        time; the store keeps the latest time per customer.
    """

    callbacks: list[Callback] = field(default_factory=list)
    attempts: list[tuple[Attempt, AttemptState | None]] = field(default_factory=list)
    requests: list[tuple[str, str] | tuple[str, str, bytes]] = field(
        default_factory=list
    )
    events: list[tuple[datetime, str, str, dict]] = field(default_factory=list)
    settings: dict[str, bytes] = field(default_factory=dict)
    campaigns: list[Campaign] = field(default_factory=list)
    reached: list[tuple[str, datetime]] = field(default_factory=list)

    def event(self, time: datetime, kind: str, callback_id: str, **payload) -> None:
        self.events.append((time, kind, callback_id, payload))


class CallbackStore(Protocol):
    """Storage operations the scheduler needs from a durable store."""

    def commit(self, change: Change) -> list[int]:
        """Write ``change`` atomically and durably; return the event sequence
        numbers. Raise ``LeaseError`` on a failed guard, ``StorageError`` on a
        storage failure; nothing is written in either case."""
        ...

    def batch(self) -> AbstractContextManager:
        """Group the commits inside the block into one durable transaction;
        a failed change rolls back alone (savepoint)."""
        ...

    def get_callback(self, callback_id: str) -> Callback | None: ...

    def callback_for_request(self, request_id: str) -> str | None:
        """The callback id a request id created or updated, if any."""
        ...

    def request_fingerprint(self, request_id: str) -> bytes | None:
        """Return the fingerprint recorded with ``request_id``, or ``None``
        when the id is unknown or was recorded without one."""
        ...

    def open_callback_for(self, customer_id: str, queue: str) -> Callback | None:
        """The pending or dialing callback of a customer for a queue."""
        ...

    def list_callbacks(
        self,
        *,
        state: str | None,
        customer_id: str | None,
        queue: str | None,
        limit: int,
        after_id: str | None,
    ) -> list[Callback]:
        """Callbacks matching the filters, by ascending id, after ``after_id``."""
        ...

    def due_queues(self, now: datetime) -> list[str]:
        """Queues with at least one pending callback whose ``not_before``
        is at or before ``now``."""
        ...

    def due_callbacks(self, queue: str, now: datetime, limit: int) -> list[Callback]:
        """Pending callbacks of ``queue`` with ``not_before <= now``, by
        ascending original entry time (then id), at most ``limit``."""
        ...

    def expired_pending(self, now: datetime, limit: int) -> list[Callback]:
        """Pending callbacks whose ``expires_at`` is at or before ``now``."""
        ...

    def overdue_pending(
        self, before: datetime, limit: int, after_id: str | None = None
    ) -> list[Callback]:
        """Pending callbacks with ``not_before <= before``, by ascending id,
        after ``after_id``."""
        ...

    def count_booked(
        self, queue: str, start: datetime, end: datetime, exclude_id: str = ""
    ) -> int:
        """Timed promises of ``queue`` with a promised time in ``[start, end)``
        that still keep their reservation, other than ``exclude_id``.

        A promise keeps it while it is pending and none of its attempts took
        an agent (attempts that ended ``NOT_DIALED`` do not count). Its first
        release that takes an agent moves it to ``count_released`` of the
        interval of that release, so an interval's bookings plus its
        releases count each promise once.
        """
        ...

    def latest_promise(
        self, queue: str, entry_time: datetime, exclude_id: str = ""
    ) -> datetime | None:
        """Latest promised time among open ``PREDICTED`` promises of
        ``queue`` that entered at or before ``entry_time``, other than
        ``exclude_id``."""
        ...

    def count_open_before(
        self, queue: str, entry_time: datetime, exclude_id: str = ""
    ) -> int:
        """Open ``PREDICTED`` and ``ASAP`` promises (pending or dialing) of
        ``queue`` that entered at or before ``entry_time``, other than
        ``exclude_id``: the places in the queue that the switch no longer
        shows. Customer-chosen times are not places in the queue."""
        ...

    def count_released(self, queue: str, start: datetime, end: datetime) -> int:
        """Attempts of ``queue`` issued in ``[start, end)``, except those
        that ended ``NOT_DIALED`` (they took no agent)."""
        ...

    def get_attempt(self, attempt_id: str) -> Attempt | None: ...

    def open_attempt(self, callback_id: str) -> Attempt | None:
        """The attempt of a callback that is not final, if any."""
        ...

    def attempts_of(self, callback_id: str) -> list[Attempt]: ...

    def expired_leases(self, now: datetime, limit: int) -> list[Attempt]:
        """Attempts not final whose lease expired at or before ``now``."""
        ...

    def read_events(self, after_seq: int, limit: int) -> list[Event]:
        """Journal events with ``seq > after_seq``, in order."""
        ...

    def iter_events(self) -> Iterator[Event]:
        """Iterate over every journal event, in order."""
        ...

    def get_setting(self, name: str) -> bytes | None:
        """Return the named setting, or ``None``."""
        ...

    # Campaigns (callsure.engine.campaigns). Targets are callbacks of mode
    # CAMPAIGN. The SQLite backend leaves them out of due_queues,
    # due_callbacks, overdue_pending and open_callback_for, so callbacks
    # never wait behind them.

    def get_campaign(self, campaign_id: str) -> Campaign | None: ...

    def campaign_for_request(self, request_id: str) -> Campaign | None:
        """Return the campaign a create request id made, if any."""
        ...

    def list_campaigns(self, states: tuple[str, ...]) -> list[Campaign]:
        """Campaigns in one of ``states``, by ascending id."""
        ...

    def page_campaigns(
        self, *, state: str | None, limit: int, after_id: str | None
    ) -> list[Campaign]:
        """Campaigns by ascending id (creation order) after ``after_id``,
        only those in ``state`` when it is given."""
        ...

    def campaign_targets(
        self, campaign_id: str, *, state: str | None, limit: int, after_id: str | None
    ) -> list[Callback]:
        """Targets of a campaign by ascending id (target order), after
        ``after_id``."""
        ...

    def due_targets(
        self, campaign_id: str, now: datetime, limit: int
    ) -> list[Callback]:
        """Pending targets of a campaign with ``not_before <= now``, in
        target order."""
        ...

    def count_targets(self, campaign_id: str) -> dict[str, int]:
        """Targets of a campaign per callback state value."""
        ...

    def count_targets_in(self, campaign_id: str, states: tuple[str, ...]) -> int:
        """Targets of a campaign in one of ``states`` (callback state values)."""
        ...

    def dialing_target_customers(self) -> list[str]:
        """Customer ids of the campaign targets being dialed, any campaign."""
        ...

    def count_target_outcomes(self, campaign_id: str) -> dict[str, int]:
        """Final attempts of a campaign's targets per outcome value."""
        ...

    def open_targets_of(self, customer_id: str) -> list[Callback]:
        """Pending or dialing campaign targets of a customer, any campaign."""
        ...

    def open_callbacks_of(self, customer_id: str) -> list[Callback]:
        """Pending or dialing callbacks (not campaign targets) of a customer,
        in any queue."""
        ...

    def last_reached(self, customer_id: str) -> datetime | None:
        """Return the latest time recorded in ``Change.reached`` for a
        customer, if any."""
        ...

    def rebuild_state(self) -> int:
        """Recreate the current-state tables from the journal; return the
        number of callbacks restored."""
        ...

    def close(self) -> None: ...

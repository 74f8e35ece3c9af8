"""Callback promises: requests, the promise itself, its dial attempts and orders.

A ``Callback`` is the promise made to a customer who left a queue: the
engine calls them back, keeps their original place in the queue, and
connects them to an agent. Its lifecycle::

    PENDING ──due()──> DIALING ──report_outcome(CONNECTED)──> COMPLETED
       ^                  │
       └──retry ladder────┤ (busy, no answer, machine, ... under the policy)
                          └──ladder exhausted / number bad──> FAILED
    PENDING ──cancel()──> CANCELLED
    PENDING ──customer_reached_agent()──> DROPPED
    PENDING ──expiry passed──> EXPIRED

Every object here is a plain dataclass of built-in types, enums and
timezone-aware UTC datetimes, so it pickles across Ray and converts to a
msgpack row with ``to_row`` and back with ``from_row``.
"""

from __future__ import annotations

import enum
import functools
import re
import unicodedata
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, date, datetime

from callsure.engine.exceptions import ValidationError

# Length limits of the text fields a request stores, in characters. Every
# request and promise row carries these fields, so an unbounded value would
# grow the store, the journal and each event sent to clients. The limits
# leave room above the values in use: ids are UUIDs (36 characters) or CRM
# keys, queue names are agent-group names, and an IVR history is the menu
# path of one call.
MAX_ID_LENGTH = 128
"""Maximum length of ``request_id``, ``customer_id`` and agent ids."""
MAX_QUEUE_LENGTH = 128
"""Maximum length of a queue (agent group) name."""
MAX_IVR_STEPS = 64
"""Maximum number of steps in an IVR history."""
MAX_IVR_STEP_LENGTH = 128
"""Maximum length of one IVR history step, such as ``menu=2``."""
MAX_LANGUAGE_LENGTH = 64
"""Maximum length of a language tag. BCP 47 tags in use, such as ``pt-BR``,
are much shorter."""
LANGUAGE_TAG = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z]{4})?(-([A-Za-z]{2}|[0-9]{3}))?")
"""Shape of the language of a callback or a campaign target, a BCP 47 tag
(RFC 5646) such as ``en``, ``pt-BR``, ``es-419`` or ``zh-Hant-TW``. It is
a primary language of 2 or 3 letters, an optional script of 4 letters and
an optional region of 2 letters or 3 digits. Variants, extensions and
private-use subtags are rejected."""
LANGUAGE_EXAMPLES = "en, en-US, pt-BR or zh-Hant-TW"


class CallbackMode(enum.Enum):
    """When the customer is called back."""

    ASAP = "asap"
    """As soon as an agent of the group is free."""
    AT_TIME = "at_time"
    """At a time the customer chose, checked for feasibility."""
    PREDICTED = "predicted"
    """At the time the prediction model gives for the customer's turn."""
    WINDOW = "window"
    """Inside an administered callback window (a date and a named period)."""
    CAMPAIGN = "campaign"
    """A target of an outbound campaign (``callsure.engine.campaigns``). The
    promotion scheduler releases it into capacity that callbacks leave
    free; ``CallbackScheduler.due`` never does."""


class CallbackState(enum.Enum):
    """Lifecycle state of a promise; see the module docstring."""

    PENDING = "pending"
    DIALING = "dialing"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DROPPED = "dropped"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def is_final(self) -> bool:
        return self not in (CallbackState.PENDING, CallbackState.DIALING)


class AttemptState(enum.Enum):
    """Lifecycle state of one dial attempt.

    ``ISSUED``: the dial order was handed out with a lease, dialing may or
    may not have started. ``DIALING``: the gateway confirmed that it dials.
    ``FINAL``: an outcome is recorded; nothing more happens to the attempt.
    """

    ISSUED = "issued"
    DIALING = "dialing"
    FINAL = "final"


class Outcome(enum.Enum):
    """Result of one dial attempt, as reported by the gateway."""

    CONNECTED = "connected"
    """A person answered and was bridged to an agent."""
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MACHINE = "machine"
    """An answering machine or voicemail answered."""
    SIT = "sit"
    """A special information tone; the SIT code decides the retry."""
    FAX = "fax"
    SILENCE = "silence"
    REJECTED = "rejected"
    """The callee declined the call (SIP 603 Decline, or a key press)."""
    INVALID_NUMBER = "invalid_number"
    NETWORK_FAILURE = "network_failure"
    CUSTOMER_HUNG_UP = "customer_hung_up"
    """The customer answered but hung up before an agent joined."""
    NOT_DIALED = "not_dialed"
    """The order was returned without dialing (no agent could be reserved);
    it does not count as an attempt."""
    UNKNOWN = "unknown"
    """The lease expired before an outcome arrived (crash or lost report)."""


class SitCode(enum.Enum):
    """Special information tone codes (Telcordia SR-2275)."""

    IC = "IC"
    """Intercept: number changed or disconnected. Never retried."""
    VC = "VC"
    """Vacant code: unassigned number. Never retried."""
    NC = "NC"
    """No circuit: trunks busy. Retried later."""
    RO = "RO"
    """Reorder: switching blockage. Retried."""
    IO = "IO"
    """Ineffective other. Retried."""


@dataclass(frozen=True)
class CallbackRequest:
    """A customer's request for a callback, as the API receives it.

    Attributes
    ----------
    request_id : str
        Client-chosen id; a replayed request with the same id returns the
        first result instead of creating another promise. Required.
    customer_id : str
        Required.
    queue : str
        Agent group (queue) the customer was waiting for. Required.
    phone_number : str
        Number to call back, E.164. Required.
    mode : CallbackMode
    entry_time : datetime or None
        When the customer entered the queue (UTC). The promise keeps this
        place. ``None`` means the request time.
    requested_time : datetime or None
        For ``AT_TIME``: the time the customer chose. Must be timezone-aware.
    window_date, window_period : date, str or None
        For ``WINDOW``: the local date and the period name of the calendar.
    queue_position : int
        Callers ahead of the customer when they asked (for ``PREDICTED``).
    ivr_history : tuple of str
        Menu choices and prompts the customer went through, passed on to
        the agent. At most ``MAX_IVR_STEPS`` steps of at most
        ``MAX_IVR_STEP_LENGTH`` characters each.
    language : str
        Language tag of the customer, for the SMS template.
    grade : str
        Customer grade from ``CustomerBook.grade`` (vip, regular, complaint).
    priority : int
        Routing priority from the customer's grade and repeat-caller status.
    dedicated_agent_id : str or None
        A VIP's dedicated agent (``CustomerBook`` or ``AgentRoster``).
    time_zone : str or None
        IANA zone of the customer, used to read ``requested_local_time``.
    requested_local_time : datetime or None
        For ``AT_TIME``: the chosen time as naive local wall-clock time in
        ``time_zone``, instead of ``requested_time``.

    Raises
    ------
    ValidationError
        When ``request_id``, ``customer_id`` or ``dedicated_agent_id`` is
        longer than ``MAX_ID_LENGTH``, ``queue`` longer than
        ``MAX_QUEUE_LENGTH``, ``language`` longer than
        ``MAX_LANGUAGE_LENGTH``, or ``ivr_history`` over its limits. The
        scheduler checks the other fields when it plans the promise.
    """

    request_id: str
    customer_id: str
    queue: str
    phone_number: str
    mode: CallbackMode = CallbackMode.ASAP
    entry_time: datetime | None = None
    requested_time: datetime | None = None
    window_date: date | None = None
    window_period: str | None = None
    queue_position: int = 0
    ivr_history: tuple[str, ...] = ()
    language: str = "en"
    grade: str = "regular"
    priority: int = 0
    dedicated_agent_id: str | None = None
    time_zone: str | None = None
    requested_local_time: datetime | None = None

    def __post_init__(self):
        check_length("request_id", self.request_id, MAX_ID_LENGTH)
        check_length("customer_id", self.customer_id, MAX_ID_LENGTH)
        check_length("queue", self.queue, MAX_QUEUE_LENGTH)
        check_length("dedicated_agent_id", self.dedicated_agent_id, MAX_ID_LENGTH)
        check_length("language", self.language, MAX_LANGUAGE_LENGTH)
        check_language("language", self.language)
        check_ivr_history(self.ivr_history)


def check_language(field: str, value: str) -> None:
    """Raise ``ValidationError`` naming ``field`` when ``value`` does not
    have the shape of ``LANGUAGE_TAG``.

    NOTE: only the shape is checked, not the IANA subtag registry, so
    ``xx-YY`` passes.
    """
    if not isinstance(value, str) or not LANGUAGE_TAG.fullmatch(value):
        raise ValidationError(
            field, value, f"send a BCP 47 language tag such as {LANGUAGE_EXAMPLES}"
        )


def check_length(field: str, value: object, limit: int) -> None:
    """Raise ``ValidationError`` when the text ``value`` is over ``limit``
    or contains a control character (a newline, a NUL).

    Values that are not text pass, so that the check that needs a type can
    name it. The error shows only the first 16 characters of the value.
    """
    if not isinstance(value, str):
        return
    if len(value) > limit:
        raise ValidationError(
            field,
            value[:16] + "...",
            f"send at most {limit} characters; this value has {len(value)}",
        )
    if not value.isprintable() and any(
        unicodedata.category(character) == "Cc" for character in value
    ):
        raise ValidationError(
            field,
            value[:16],
            "send text without control characters (newlines, tabs, NUL)",
        )


def check_ivr_history(history) -> None:
    """Raise ``ValidationError`` when an IVR history is over its limits.

    The error names the step and its length but not its text, because a
    step can contain digits the caller typed, such as an account number.
    """
    if isinstance(history, str) or not hasattr(history, "__len__"):
        raise ValidationError(
            "ivr_history", type(history).__name__, "send a list of steps as text"
        )
    if len(history) > MAX_IVR_STEPS:
        raise ValidationError(
            "ivr_history",
            f"<{len(history)} steps>",
            f"send at most {MAX_IVR_STEPS} steps; this history has "
            f"{len(history)}, so keep its last {MAX_IVR_STEPS}",
        )
    for index, step in enumerate(history):
        if not isinstance(step, str):
            raise ValidationError(
                "ivr_history",
                f"<step {index}: {type(step).__name__}>",
                "send each step as text",
            )
        if len(step) > MAX_IVR_STEP_LENGTH:
            raise ValidationError(
                "ivr_history",
                f"<step {index}: {len(step)} characters>",
                f"send steps of at most {MAX_IVR_STEP_LENGTH} characters; "
                f"step {index} has {len(step)}",
            )


@dataclass(frozen=True)
class Callback:
    """A durable callback promise.

    Attributes
    ----------
    callback_id : str
    request_id : str
        Id of the request that created the promise.
    customer_id, queue, phone_number, mode :
        As in the request; ``phone_number`` is the validated E.164 form.
    entry_time : datetime
        Original queue entry time; releases keep this order.
    created_at : datetime
        When the promise was stored.
    promised_time : datetime or None
        The time announced to the customer; ``None`` for ``ASAP``.
    window_end : datetime or None
        End of the promised window in ``WINDOW`` mode; ``None`` otherwise.
    not_before : datetime
        Earliest time of the next release (the promise, or a retry delay).
    expires_at : datetime
        A promise still pending at this time ends as ``EXPIRED`` with an SMS
        request.
    state : CallbackState
    reason : str
        Why the promise reached its state ("" while pending).
    attempts : int
        Attempts that counted (``NOT_DIALED`` does not count).
    last_attempt : int
        Number of the last attempt issued, counted or not.
    outcome_counts : dict
        Attempts per outcome value, for the per-outcome retry limits.
    grade : str
        Customer grade when the promise was made (vip, regular, complaint).
    priority : int
        Routing priority; higher first at the agent group.
    dedicated_agent_id : str or None
        A VIP's dedicated agent; after ``fallback_at`` any agent of the group.
    fallback_at : datetime or None
    ivr_history : tuple of str
    language : str
    pending_stop : str
        A cancel or drop that arrived while an attempt was in flight; it
        applies when the attempt ends without a connection.
    time_zone : str or None
        The customer's IANA zone from the request.
    window_date : str or None
        For ``WINDOW``: the requested local date, "YYYY-MM-DD".
    window_period : str or None
        For ``WINDOW``: the requested period of the calendar.
    campaign_id : str or None
        For ``CAMPAIGN``: the campaign the target belongs to.
    version : int
        Incremented on every stored change.
    updated_at : datetime
    """

    callback_id: str
    request_id: str
    customer_id: str
    queue: str
    phone_number: str
    mode: CallbackMode
    entry_time: datetime
    created_at: datetime
    promised_time: datetime | None
    window_end: datetime | None
    not_before: datetime
    expires_at: datetime
    state: CallbackState = CallbackState.PENDING
    reason: str = ""
    attempts: int = 0
    last_attempt: int = 0
    outcome_counts: dict[str, int] = field(default_factory=dict)
    grade: str = "regular"
    priority: int = 0
    dedicated_agent_id: str | None = None
    fallback_at: datetime | None = None
    ivr_history: tuple[str, ...] = ()
    language: str = "en"
    pending_stop: str = ""
    time_zone: str | None = None
    window_date: str | None = None
    window_period: str | None = None
    campaign_id: str | None = None
    version: int = 1
    updated_at: datetime | None = None

    def evolve(self, now: datetime, **changes) -> Callback:
        """Return a copy with ``changes`` applied, the version bumped."""
        return replace(self, version=self.version + 1, updated_at=now, **changes)

    def to_row(self) -> dict:
        """Convert to a dict of msgpack-friendly values (epoch seconds, strings)."""
        # A stored change converts its callback twice (the journal event and
        # the row), so the first conversion is kept on the frozen instance.
        row = self.__dict__.get("_row")
        if row is None:
            row = _to_row(self)
            object.__setattr__(self, "_row", row)
        return dict(row)

    def __getstate__(self) -> dict:
        # Callbacks cross Ray pickled, and the kept row would double their size.
        state = dict(self.__dict__)
        state.pop("_row", None)
        return state

    @classmethod
    def from_row(cls, row: dict) -> Callback:
        return _from_row(cls, row)


@dataclass(frozen=True)
class Attempt:
    """One dial attempt of a callback.

    Attributes
    ----------
    attempt_id : str
        ``<callback_id>/<number>``; also the idempotency key of the dial, so
        a gateway that sees a key twice must not dial again.
    callback_id : str
    queue : str
        Queue of the callback, for the released-per-interval count.
    number : int
        1 for the first attempt.
    state : AttemptState
    issued_at : datetime
    lease_expires_at : datetime
        The holder must report an outcome or renew before this time; after
        it, recovery finalises the attempt as ``UNKNOWN``.
    lease_owner : str
        Worker that holds the lease ("" until claimed).
    outcome : Outcome or None
    sit_code : SitCode or None
    detail : str
        Free text from the gateway (SIP status, AMD cause).
    agent_id : str or None
        Agent reserved for the call (agent-first mode) or that took it.
    finished_at : datetime or None
    """

    attempt_id: str
    callback_id: str
    queue: str
    number: int
    state: AttemptState
    issued_at: datetime
    lease_expires_at: datetime
    lease_owner: str = ""
    outcome: Outcome | None = None
    sit_code: SitCode | None = None
    detail: str = ""
    agent_id: str | None = None
    finished_at: datetime | None = None

    @property
    def idempotency_key(self) -> str:
        return self.attempt_id

    def to_row(self) -> dict:
        return _to_row(self)

    @classmethod
    def from_row(cls, row: dict) -> Attempt:
        return _from_row(cls, row)


class DialMode(enum.Enum):
    """Order in which customer and agent are secured when a callback is released."""

    CUSTOMER_FIRST = "customer_first"
    """Dial, and look for an agent once a person answered."""
    AGENT_FIRST = "agent_first"
    """Reserve an agent (``AgentRoster.reserve``), then dial."""


@dataclass(frozen=True)
class DialTarget:
    """Destination of a connected callback: a group, or one dedicated agent."""

    queue: str
    agent_id: str | None = None


@dataclass(frozen=True)
class DialOrder:
    """An order to dial one attempt, handed to a gateway by ``due()``.

    The gateway calls ``start_dialing`` before it dials ``phone_number``. That
    call succeeds once per ``idempotency_key`` and raises ``LeaseError`` after,
    so the same attempt is never dialed twice. The gateway renews the lease
    while the call lasts and reports one outcome.
    """

    attempt_id: str
    idempotency_key: str
    callback_id: str
    customer_id: str
    phone_number: str
    attempt_number: int
    lease_expires_at: datetime
    target: DialTarget
    dial_mode: DialMode
    priority: int
    grade: str
    entry_time: datetime
    promised_time: datetime | None
    ivr_history: tuple[str, ...]
    language: str
    campaign_id: str | None = None
    """The campaign of a ``CAMPAIGN`` target; ``None`` for a callback."""


@dataclass(frozen=True)
class OutcomeResult:
    """Decision of ``report_outcome``: the updated promise and what follows."""

    callback: Callback
    attempt: Attempt
    next_attempt_at: datetime | None
    """Time of the next release when a retry was scheduled."""
    sms_text: str | None
    """Rendered SMS when the ladder ended with an SMS request."""


@dataclass(frozen=True)
class Event:
    """One journal entry: a state change, in order.

    Attributes
    ----------
    seq : int
        Position in the journal, from 1, without gaps within one store.
    time : datetime
    kind : str
        For example ``callback.created``; see ``callsure.engine.scheduler``.
    callback_id : str
        "" for events not about one callback (policy changes).
    payload : dict
        Event data; callback events carry the full callback row.
    """

    seq: int
    time: datetime
    kind: str
    callback_id: str
    payload: dict


# Row conversion: datetimes travel as UTC epoch seconds, enums as values,
# tuples as lists, so a row is valid msgpack and a valid SQLite parameter set.


def to_epoch(when: datetime | None) -> float | None:
    if when is None:
        return None
    return when.timestamp()


def from_epoch(seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC)


@functools.cache
def _field_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _to_row(obj) -> dict:
    # A shallow walk over the fields: dataclasses.asdict deep-copies every
    # value and was 90 % of the cost of a bulk insert.
    row = {}
    for name in _field_names(type(obj)):
        value = getattr(obj, name)
        if isinstance(value, datetime):
            value = value.timestamp()
        elif isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, dict):
            value = dict(value)
        row[name] = value
    return row


_ENUMS = {
    "mode": CallbackMode,
    "state": None,  # resolved per class below
    "outcome": Outcome,
    "sit_code": SitCode,
}
_DATETIMES = {
    "entry_time",
    "created_at",
    "promised_time",
    "window_end",
    "not_before",
    "expires_at",
    "fallback_at",
    "updated_at",
    "issued_at",
    "lease_expires_at",
    "finished_at",
}


def _from_row(cls, row: dict):
    names = {f.name for f in fields(cls)}
    state_enum = CallbackState if cls is Callback else AttemptState
    values = {}
    for name, value in row.items():
        if name not in names:
            continue
        if value is not None:
            if name in _DATETIMES:
                value = from_epoch(value)
            elif name == "state":
                value = state_enum(value)
            elif name in _ENUMS:
                value = _ENUMS[name](value)
            elif name == "ivr_history":
                value = tuple(value)
            elif name == "outcome_counts":
                value = dict(value)
        values[name] = value
    return cls(**values)

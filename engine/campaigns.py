"""Outbound campaigns: VIP promotions, complaint follow-ups, ticket updates.

A ``Campaign`` calls a list of customers and bridges those who answer to
an agent group (the campaign's queue) or to a target's dedicated agent.
Its lifecycle::

    DRAFT ──start──> RUNNING <──start / pause──> PAUSED
                        │                          │
                        └──end_time passed, or every target ended──> FINISHED

Each target is stored as a ``Callback`` of mode ``CAMPAIGN`` carrying the
campaign's id, not as a record of its own. The callback record is what
the dial machinery already reads: its attempts and leases keep at most
one dial in flight, the retry ladder and the SMS at the end of a failed
ladder apply, ``DialOrder`` carries the target's dedicated agent and its
context lines (in ``ivr_history``, which the gateway shows the agent), and
every change is journaled in the same transaction. A second table would
have needed a copy of each of those paths. What differs is who releases
it: ``CallbackScheduler.due`` skips campaign targets, and the promotion
scheduler (``callsure.engine.promotion``) releases them into the capacity
that callbacks and inbound callers leave free.

A target's state is its callback's state: ``PENDING`` until released,
``COMPLETED`` once a person was bridged, ``FAILED`` after the ladder,
``DROPPED`` when it was skipped (the customer has an open callback or
reached an agent after the campaign started), ``CANCELLED`` when removed
(an opt-out), and ``EXPIRED`` when the campaign ended first, without an
SMS, because nothing was promised to the customer.

The SMS after a failed ladder is the campaign's own text, not the callback
template of ``SmsPolicy``: the campaign's ``sms_text`` when set, otherwise
the default of its kind in ``DEFAULT_SMS_TEXTS``. A VIP promotion has no
default, so it sends no SMS unless ``sms_text`` is set, and an empty
``sms_text`` sends none for any kind.
"""

from __future__ import annotations

import enum
import string
from dataclasses import dataclass, replace
from datetime import datetime

from callsure.engine.callbacks import (
    MAX_ID_LENGTH,
    MAX_IVR_STEP_LENGTH,
    MAX_LANGUAGE_LENGTH,
    MAX_QUEUE_LENGTH,
    check_ivr_history,
    check_language,
    check_length,
    from_epoch,
)
from callsure.engine.exceptions import ValidationError

MAX_NAME_LENGTH = 128
"""Maximum length of a campaign name, in characters."""
MAX_IN_FLIGHT = 1000
"""Maximum pacing cap: calls of one campaign in flight at once."""
MAX_TARGETS_PER_REQUEST = 1000
"""Maximum targets in one ``add_targets`` call, so one request stays one
transaction of bounded size."""
MAX_TARGETS = 1_000_000
"""Maximum targets of one campaign; target ids number them in 7 digits."""
MAX_SMS_TEXT_LENGTH = 480
"""Maximum length of a campaign's SMS template, in characters. The text
sent is longer by the names and ids filled in."""
SMS_FIELDS = ("campaign", "queue", "callback_id")
"""Placeholders of a campaign's SMS template: the campaign's name, its
queue and the target's callback id (the reference the customer quotes)."""


class CampaignKind(enum.Enum):
    """Subject of a campaign; the kind orders campaigns at release."""

    COMPLAINT_FOLLOW_UP = "complaint_follow_up"
    """Calls customers back about a complaint; released first."""
    VOC_TICKET_UPDATE = "voc_ticket_update"
    """Tells customers the status of their voice-of-customer ticket."""
    VIP_PROMOTION = "vip_promotion"
    """Offers a promotion to VIP customers; released last."""

    @property
    def rank(self) -> int:
        """Release order between campaigns: lower goes first."""
        return _RANKS[self]

    @property
    def grade(self) -> str:
        """Customer grade the campaign's calls carry to the agent group."""
        return _GRADES[self]


_RANKS = {
    CampaignKind.COMPLAINT_FOLLOW_UP: 0,
    CampaignKind.VOC_TICKET_UPDATE: 1,
    CampaignKind.VIP_PROMOTION: 2,
}
_GRADES = {
    CampaignKind.COMPLAINT_FOLLOW_UP: "complaint",
    CampaignKind.VOC_TICKET_UPDATE: "regular",
    CampaignKind.VIP_PROMOTION: "vip",
}

DEFAULT_SMS_TEXTS: dict[CampaignKind, str | None] = {
    CampaignKind.COMPLAINT_FOLLOW_UP: (
        "We tried to call you about your complaint but could not reach you. "
        "Call us at your convenience; reference {callback_id}."
    ),
    CampaignKind.VOC_TICKET_UPDATE: (
        "We tried to call you with an update on your ticket but could not "
        "reach you. Call us for the status; reference {callback_id}."
    ),
    CampaignKind.VIP_PROMOTION: None,
}
"""SMS template per kind for a campaign created without ``sms_text``;
``None`` sends no SMS.

NOTE: a campaign has one SMS text whatever each target's language, unlike
the per-language templates of ``SmsPolicy``, so a target whose language is
not English gets the English default unless ``sms_text`` is in its
language."""


class CampaignState(enum.Enum):
    """Lifecycle state of a campaign; see the module docstring."""

    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    FINISHED = "finished"


@dataclass(frozen=True)
class CampaignRequest:
    """A request to create a campaign, as the API receives it.

    Attributes
    ----------
    request_id : str
        Client-chosen id; a replay returns the campaign the first request
        created. Required.
    name : str
        Shown to operators. Required, at most ``MAX_NAME_LENGTH`` characters.
    kind : CampaignKind
    queue : str
        Agent group that takes the answered calls; its callback windows
        limit when the campaign dials. Required.
    start_time, end_time : datetime
        Timezone-aware; the campaign dials in ``[start_time, end_time)``.
    max_in_flight : int
        Pacing cap: calls of the campaign in flight at once, 1 to
        ``MAX_IN_FLIGHT``.
    sms_text : str or None
        ``str.format`` template of the SMS sent after a failed ladder, with
        the placeholders of ``SMS_FIELDS``; at most ``MAX_SMS_TEXT_LENGTH``
        characters. ``None`` uses the default of the kind, and an empty
        text sends no SMS.
    """

    request_id: str
    name: str
    kind: CampaignKind
    queue: str
    start_time: datetime
    end_time: datetime
    max_in_flight: int
    sms_text: str | None = None


@dataclass(frozen=True)
class CampaignTarget:
    """One customer to call in a campaign, as the API receives it.

    Attributes
    ----------
    customer_id : str
        Required. A customer appears once per campaign.
    phone_number : str
        Required; validated and stored in E.164 form.
    dedicated_agent_id : str or None
        The agent who takes the call (a VIP's own agent); the call waits
        until that agent is ready, up to the campaign's end.
    context : tuple of str
        Lines shown to the agent, such as ``ticket=T-1042`` and
        ``status=resolved``; the limits of an IVR history apply.
    language : str
        BCP 47 language tag of the customer (``LANGUAGE_TAG``), sent with
        the SMS request at the end of a failed ladder. The campaign's SMS
        text is the same in every language.
    """

    customer_id: str
    phone_number: str
    dedicated_agent_id: str | None = None
    context: tuple[str, ...] = ()
    language: str = "en"


@dataclass(frozen=True)
class Campaign:
    """A stored campaign.

    Attributes
    ----------
    campaign_id, request_id, name, kind, queue, start_time, end_time,
    max_in_flight, sms_text :
        As in the request; times in UTC.
    state : CampaignState
    created_at : datetime
    started_at : datetime or None
        When the campaign started: the later of ``start_time`` and the
        first start. A customer who reached an agent at or after this time
        is not called. ``None`` while a draft.
    reason : str
        Why the campaign reached its state, such as "end time passed".
    target_count : int
        Targets added so far; numbers the next target.
    version : int
        Incremented on every stored change.
    updated_at : datetime or None
    """

    campaign_id: str
    request_id: str
    name: str
    kind: CampaignKind
    queue: str
    start_time: datetime
    end_time: datetime
    max_in_flight: int
    created_at: datetime
    state: CampaignState = CampaignState.DRAFT
    started_at: datetime | None = None
    reason: str = ""
    target_count: int = 0
    version: int = 1
    updated_at: datetime | None = None
    sms_text: str | None = None

    @property
    def is_active(self) -> bool:
        """True while running or paused: targets may still be called."""
        return self.state in (CampaignState.RUNNING, CampaignState.PAUSED)

    @property
    def sms_template(self) -> str:
        """SMS template sent after a failed ladder; empty when none is sent."""
        if self.sms_text is not None:
            return self.sms_text
        return DEFAULT_SMS_TEXTS[self.kind] or ""

    def render_sms(self, callback_id: str) -> str | None:
        """Return the SMS text for the target ``callback_id``, or ``None``
        when the campaign sends no SMS."""
        if not self.sms_template:
            return None
        return self.sms_template.format(
            campaign=self.name, queue=self.queue, callback_id=callback_id
        )

    def evolve(self, now: datetime, **changes) -> Campaign:
        """Return a copy with ``changes`` applied, the version bumped."""
        return replace(self, version=self.version + 1, updated_at=now, **changes)

    def target_id(self, number: int) -> str:
        """Return the callback id of the target numbered ``number`` (from 1).

        Ids sort in the order targets were added, which is the order the
        promotion scheduler calls them in.
        """
        return f"{self.campaign_id}-{number:07d}"

    def to_row(self) -> dict:
        """Convert to a dict of msgpack-friendly values (epoch seconds, strings)."""
        row = dict(self.__dict__)
        for name in ("start_time", "end_time", "created_at", "started_at"):
            row[name] = _epoch(row[name])
        row["updated_at"] = _epoch(self.updated_at)
        row["kind"] = self.kind.value
        row["state"] = self.state.value
        return row

    @classmethod
    def from_row(cls, row: dict) -> Campaign:
        values = dict(row)
        for name in ("start_time", "end_time", "created_at", "started_at"):
            values[name] = from_epoch(values.get(name))
        values["updated_at"] = from_epoch(values.get("updated_at"))
        values["kind"] = CampaignKind(values["kind"])
        values["state"] = CampaignState(values["state"])
        return cls(**values)


def _epoch(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def check_request(request: CampaignRequest, now: datetime) -> None:
    """Raise ``ValidationError`` naming the first invalid field of ``request``."""
    for field, limit in (
        ("request_id", MAX_ID_LENGTH),
        ("name", MAX_NAME_LENGTH),
        ("queue", MAX_QUEUE_LENGTH),
    ):
        value = getattr(request, field)
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(field, value, f"send a non-empty {field}")
        check_length(field, value, limit)
    if not isinstance(request.kind, CampaignKind):
        names = ", ".join(kind.value for kind in CampaignKind)
        raise ValidationError("kind", request.kind, f"send one of {names}")
    for field in ("start_time", "end_time"):
        value = getattr(request, field)
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValidationError(
                field, value, "send a timezone-aware time (UTC preferred)"
            )
    if request.end_time <= request.start_time:
        raise ValidationError(
            "end_time",
            request.end_time.isoformat(),
            f"send a time after start_time {request.start_time.isoformat()}",
        )
    if request.end_time <= now:
        raise ValidationError(
            "end_time",
            request.end_time.isoformat(),
            f"send a time after now ({now.isoformat()})",
        )
    if (
        isinstance(request.max_in_flight, bool)
        or not isinstance(request.max_in_flight, int)
        or not 1 <= request.max_in_flight <= MAX_IN_FLIGHT
    ):
        raise ValidationError(
            "max_in_flight",
            request.max_in_flight,
            f"send the number of calls allowed in flight at once, 1 to {MAX_IN_FLIGHT}",
        )
    if request.sms_text is not None:
        check_sms_text(request.sms_text)


def check_sms_text(text: str) -> None:
    """Raise ``ValidationError`` when ``text`` is no valid SMS template."""
    if not isinstance(text, str):
        raise ValidationError("sms_text", text, "send a text, or nothing")
    check_length("sms_text", text, MAX_SMS_TEXT_LENGTH)
    names = ", ".join("{" + name + "}" for name in SMS_FIELDS)
    fix = f"use only the placeholders {names}, and write {{{{ and }}}} for a brace"
    try:
        # Plain placeholders only: a format spec such as {queue:{x}} could
        # name further fields.
        for _, name, spec, conversion in string.Formatter().parse(text):
            if name is not None and (name not in SMS_FIELDS or spec or conversion):
                placeholder = name + (f"!{conversion}" if conversion else "")
                placeholder += f":{spec}" if spec else ""
                raise ValidationError(
                    "sms_text", text, f"unknown placeholder {{{placeholder}}}: {fix}"
                )
    except ValueError as exc:
        if isinstance(exc, ValidationError):
            raise
        raise ValidationError("sms_text", text, f"{exc}: {fix}") from None


def check_target(target: CampaignTarget, field: str) -> None:
    """Raise ``ValidationError`` for an invalid target, naming ``field``
    (such as ``targets[3]``) and the target's field.

    The phone number is checked where it is normalised, by
    ``callsure.engine.phone.parse_e164``.
    """
    if not isinstance(target.customer_id, str) or not target.customer_id.strip():
        raise ValidationError(
            f"{field}.customer_id", target.customer_id, "send a non-empty customer_id"
        )
    try:
        check_length("customer_id", target.customer_id, MAX_ID_LENGTH)
        check_length("dedicated_agent_id", target.dedicated_agent_id, MAX_ID_LENGTH)
        check_length("language", target.language, MAX_LANGUAGE_LENGTH)
        check_ivr_history(target.context)
    except ValidationError as exc:
        name = "context" if exc.field == "ivr_history" else exc.field
        raise type(exc)(f"{field}.{name}", exc.value, exc.fix) from None
    # check_ivr_history leaves control characters to the display; a
    # context line is shown to the agent as one line.
    for index, line in enumerate(target.context):
        check_length(f"{field}.context[{index}]", line, MAX_IVR_STEP_LENGTH)
    check_language(f"{field}.language", target.language)

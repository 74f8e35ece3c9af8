"""Customers: contact history, grade (VIP, regular, complaint), repeat callers.

A ``CustomerBook`` contains one shard of customers (the runtime spreads
customers over shards by a hash of the customer id). It records contact
events as the switch or CTI reports them, grades each customer by
configurable rules, and counts repeat calls. Its whole state converts to
built-in values with ``to_state`` for a restart.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from callsure.engine.callbacks import (
    MAX_ID_LENGTH,
    MAX_QUEUE_LENGTH,
    check_length,
    from_epoch,
    to_epoch,
)
from callsure.engine.exceptions import ValidationError

logger = logging.getLogger(__name__)


class Grade(enum.Enum):
    VIP = "vip"
    REGULAR = "regular"
    COMPLAINT = "complaint"


class ContactKind(enum.Enum):
    """Contact events of one call, as the switch or the CTI reports them."""

    ARRIVED = "arrived"
    """A call from the customer reached the contact center (counts as a call)."""
    QUEUED = "queued"
    ABANDONED = "abandoned"
    ANSWERED = "answered"
    """An agent answered the customer (inbound, or a connected callback)."""
    ENDED = "ended"


@dataclass(frozen=True)
class ContactEvent:
    customer_id: str
    kind: ContactKind
    time: datetime
    queue: str = ""
    agent_id: str | None = None
    call_id: str = ""


@dataclass(frozen=True)
class RepeatCallerRule:
    """Marks a customer as a repeat caller.

    A customer is a repeat caller when any threshold holds: at least
    ``calls`` arrivals within the last ``days`` days, a rolling window
    ending now (so "4 calls in a day" means 4 within the last 24 hours, not
    since local midnight).

    Attributes
    ----------
    thresholds : tuple of (int, float)
        ``(calls, days)`` pairs, for example ``((4, 1.0), (5, 3.0))``.
    priority_boost : int
        Added to the routing priority of a repeat caller.
    offer_callback : bool
        Offer a callback to a repeat caller whatever the predicted wait.
    """

    thresholds: tuple[tuple[int, float], ...] = ((4, 1.0), (5, 3.0))
    priority_boost: int = 5
    offer_callback: bool = True

    def __post_init__(self):
        for calls, days in self.thresholds:
            if calls < 1 or days <= 0:
                raise ValidationError(
                    "thresholds",
                    (calls, days),
                    "send pairs of a call count >= 1 and a positive number of days",
                )

    @property
    def horizon(self) -> timedelta:
        days = max((days for _, days in self.thresholds), default=0.0)
        return timedelta(days=days)


@dataclass(frozen=True)
class GradeRules:
    """Rules that decide a customer's grade; the first match wins.

    1. VIP: the id is in ``vip_ids``, or a CRM attribute matches
       ``vip_attributes`` (for example ``{"segment": ("gold", "platinum")}``).
    2. Complaint: the id is in ``complaint_ids``, a CRM attribute matches
       ``complaint_attributes``, or at least ``complaint_threshold``
       complaints fall within the last ``complaint_window_days``.
    3. Regular otherwise.

    VIP wins over complaint because a VIP's dedicated agent is the best
    handler of the VIP's complaint too.
    """

    vip_ids: frozenset[str] = frozenset()
    vip_attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    complaint_ids: frozenset[str] = frozenset()
    complaint_attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    complaint_threshold: int = 1
    complaint_window_days: float = 30.0
    priorities: dict[str, int] = field(
        default_factory=lambda: {"vip": 20, "complaint": 10, "regular": 0}
    )

    def __post_init__(self):
        if self.complaint_threshold < 1:
            raise ValidationError(
                "complaint_threshold", self.complaint_threshold, "send 1 or more"
            )
        if self.complaint_window_days <= 0:
            raise ValidationError(
                "complaint_window_days",
                self.complaint_window_days,
                "send a positive number of days",
            )


@dataclass(frozen=True)
class CustomerStatus:
    """Routing facts about a customer at one time."""

    customer_id: str
    grade: Grade
    priority: int
    repeat_caller: bool
    offer_callback: bool
    dedicated_agent_id: str | None
    calls_last_day: int


@dataclass
class Customer:
    """One customer's record in a shard."""

    customer_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    dedicated_agent_id: str | None = None
    arrivals: deque[datetime] = field(default_factory=deque)
    complaints: list[datetime] = field(default_factory=list)
    last_answered: dict[str, datetime] = field(default_factory=dict)
    last_contact: datetime | None = None


def _matches(attributes: dict[str, str], rules: dict[str, tuple[str, ...]]) -> bool:
    return any(attributes.get(key) in values for key, values in rules.items())


class CustomerBook:
    """A shard of customers.

    Parameters
    ----------
    rules : GradeRules
    repeat_rule : RepeatCallerRule

    Notes
    -----
    Contact events may arrive out of order (several CTI links); counters
    use the event times, not the arrival order. Arrivals older than the
    longest repeat-caller window are pruned as new ones arrive.
    """

    def __init__(
        self,
        rules: GradeRules | None = None,
        repeat_rule: RepeatCallerRule | None = None,
    ):
        self.rules = rules or GradeRules()
        self.repeat_rule = repeat_rule or RepeatCallerRule()
        self._customers: dict[str, Customer] = {}

    def __len__(self) -> int:
        return len(self._customers)

    def customer(self, customer_id: str) -> Customer:
        """Return the record of ``customer_id``, created empty on first use.

        Raises ``ValidationError`` for an empty id or one longer than
        ``MAX_ID_LENGTH`` characters.
        """
        if not customer_id:
            raise ValidationError("customer_id", customer_id, "send a non-empty id")
        check_length("customer_id", customer_id, MAX_ID_LENGTH)
        record = self._customers.get(customer_id)
        if record is None:
            record = self._customers[customer_id] = Customer(customer_id)
        return record

    # Updates

    def set_rules(self, rules: GradeRules) -> None:
        self.rules = rules

    def set_repeat_rule(self, rule: RepeatCallerRule) -> None:
        self.repeat_rule = rule

    def record(self, event: ContactEvent) -> CustomerStatus:
        """Record a contact event; return the customer's status at the
        latest contact time known."""
        if event.time.tzinfo is None:
            raise ValidationError(
                "time", event.time.isoformat(), "send a timezone-aware time"
            )
        check_length("queue", event.queue, MAX_QUEUE_LENGTH)
        check_length("agent_id", event.agent_id, MAX_ID_LENGTH)
        check_length("call_id", event.call_id, MAX_ID_LENGTH)
        record = self.customer(event.customer_id)
        if event.kind is ContactKind.ARRIVED:
            self._insert_arrival(record, event.time)
        elif event.kind is ContactKind.ANSWERED:
            previous = record.last_answered.get(event.queue)
            if previous is None or event.time > previous:
                record.last_answered[event.queue] = event.time
        if record.last_contact is None or event.time > record.last_contact:
            record.last_contact = event.time
        # An event that arrives late is judged at the latest known contact.
        return self.status(event.customer_id, record.last_contact)

    def _insert_arrival(self, record: Customer, when: datetime) -> None:
        arrivals = record.arrivals
        if not arrivals or when >= arrivals[-1]:
            arrivals.append(when)
        else:
            items = sorted([*arrivals, when])
            arrivals.clear()
            arrivals.extend(items)
        cutoff = arrivals[-1] - self.repeat_rule.horizon
        while arrivals and arrivals[0] < cutoff:
            arrivals.popleft()

    def set_attributes(
        self,
        customer_id: str,
        attributes: dict[str, str],
        *,
        dedicated_agent_id: str | None = None,
        replace: bool = False,
    ) -> None:
        """Store CRM attributes (merged, or replacing all with ``replace``)."""
        check_length("dedicated_agent_id", dedicated_agent_id, MAX_ID_LENGTH)
        record = self.customer(customer_id)
        if replace:
            record.attributes = dict(attributes)
        else:
            record.attributes.update(attributes)
        if dedicated_agent_id is not None:
            record.dedicated_agent_id = dedicated_agent_id or None

    def record_complaint(self, customer_id: str, when: datetime) -> None:
        self.customer(customer_id).complaints.append(when)

    # Queries

    def grade(self, customer_id: str, now: datetime) -> Grade:
        record = self._customers.get(customer_id) or Customer(customer_id)
        rules = self.rules
        if customer_id in rules.vip_ids or _matches(
            record.attributes, rules.vip_attributes
        ):
            return Grade.VIP
        if customer_id in rules.complaint_ids or _matches(
            record.attributes, rules.complaint_attributes
        ):
            return Grade.COMPLAINT
        since = now - timedelta(days=rules.complaint_window_days)
        recent = sum(1 for when in record.complaints if since <= when <= now)
        if recent >= rules.complaint_threshold:
            return Grade.COMPLAINT
        return Grade.REGULAR

    def calls_within(self, customer_id: str, now: datetime, days: float) -> int:
        """Arrivals of the customer in ``(now - days, now]``."""
        record = self._customers.get(customer_id)
        if record is None:
            return 0
        since = now - timedelta(days=days)
        return sum(1 for when in record.arrivals if since < when <= now)

    def is_repeat_caller(self, customer_id: str, now: datetime) -> bool:
        return any(
            self.calls_within(customer_id, now, days) >= calls
            for calls, days in self.repeat_rule.thresholds
        )

    def status(self, customer_id: str, now: datetime) -> CustomerStatus:
        grade = self.grade(customer_id, now)
        repeat = self.is_repeat_caller(customer_id, now)
        priority = self.rules.priorities.get(grade.value, 0)
        if repeat:
            priority += self.repeat_rule.priority_boost
        record = self._customers.get(customer_id)
        return CustomerStatus(
            customer_id=customer_id,
            grade=grade,
            priority=priority,
            repeat_caller=repeat,
            offer_callback=repeat and self.repeat_rule.offer_callback,
            dedicated_agent_id=record.dedicated_agent_id if record else None,
            calls_last_day=self.calls_within(customer_id, now, 1.0),
        )

    def reached_agent_since(
        self, customer_id: str, queue: str, since: datetime
    ) -> bool:
        """Tell whether an agent of ``queue`` answered the customer at or
        after ``since``."""
        record = self._customers.get(customer_id)
        if record is None:
            return False
        answered = record.last_answered.get(queue)
        return answered is not None and answered >= since

    # Restart

    def to_state(self) -> dict:
        """Convert the shard's customers to built-in values (msgpack-friendly)."""
        return {
            customer_id: {
                "attributes": record.attributes,
                "dedicated_agent_id": record.dedicated_agent_id,
                "arrivals": [to_epoch(t) for t in record.arrivals],
                "complaints": [to_epoch(t) for t in record.complaints],
                "last_answered": {
                    queue: to_epoch(t) for queue, t in record.last_answered.items()
                },
                "last_contact": to_epoch(record.last_contact),
            }
            for customer_id, record in self._customers.items()
        }

    @classmethod
    def from_state(
        cls,
        state: dict,
        rules: GradeRules | None = None,
        repeat_rule: RepeatCallerRule | None = None,
    ) -> CustomerBook:
        book = cls(rules, repeat_rule)
        for customer_id, item in state.items():
            book._customers[customer_id] = Customer(
                customer_id=customer_id,
                attributes=dict(item["attributes"]),
                dedicated_agent_id=item["dedicated_agent_id"],
                arrivals=deque(from_epoch(t) for t in item["arrivals"]),
                complaints=[from_epoch(t) for t in item["complaints"]],
                last_answered={
                    queue: from_epoch(t) for queue, t in item["last_answered"].items()
                },
                last_contact=from_epoch(item["last_contact"]),
            )
        return book


def grade_rules_from_plain(plain: dict) -> GradeRules:
    return GradeRules(
        vip_ids=frozenset(plain["vip_ids"]),
        vip_attributes={k: tuple(v) for k, v in plain["vip_attributes"].items()},
        complaint_ids=frozenset(plain["complaint_ids"]),
        complaint_attributes={
            k: tuple(v) for k, v in plain["complaint_attributes"].items()
        },
        complaint_threshold=plain["complaint_threshold"],
        complaint_window_days=plain["complaint_window_days"],
        priorities=dict(plain["priorities"]),
    )


def repeat_rule_from_plain(plain: dict) -> RepeatCallerRule:
    return RepeatCallerRule(
        thresholds=tuple((int(c), float(d)) for c, d in plain["thresholds"]),
        priority_boost=plain["priority_boost"],
        offer_callback=plain["offer_callback"],
    )

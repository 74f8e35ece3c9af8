"""Policies of the callback scheduler: retries, SMS, capacity, promises.

A policy is a frozen dataclass, so it pickles across Ray and an admin
change replaces it whole (``CallbackScheduler.set_retry_policy`` and the
other setters store the new policy in the journal before it applies).
Defaults come from the ``[policy]`` section of the configuration.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date, time

from callsure.engine.callbacks import DialMode, Outcome, SitCode
from callsure.engine.exceptions import ValidationError


@dataclass(frozen=True)
class RetryRule:
    """How often, and after which delays, one outcome is retried.

    Attributes
    ----------
    max_retries : int
        Retries after an attempt with this outcome; 0 never retries it.
    delays_s : tuple of float
        Delay before retry 1, 2, ...; the last delay repeats when there are
        more retries than delays.
    """

    max_retries: int
    delays_s: tuple[float, ...] = (300.0,)

    def __post_init__(self):
        if self.max_retries < 0:
            raise ValidationError(
                "max_retries", self.max_retries, "send 0 or a positive count"
            )
        if self.max_retries and not self.delays_s:
            raise ValidationError(
                "delays_s", self.delays_s, "send at least one delay in seconds"
            )
        for delay in self.delays_s:
            if delay < 0:
                raise ValidationError("delays_s", delay, "send delays >= 0 seconds")

    def delay_for(self, retry: int) -> float:
        """Delay in seconds before the ``retry``-th retry (1-based)."""
        return self.delays_s[min(retry, len(self.delays_s)) - 1]


# SIT codes that mean the number itself is bad: IC (changed or disconnected)
# and VC (vacant code), per Telcordia SR-2275. Dialers stop on them.
BAD_NUMBER_SIT_CODES = frozenset({SitCode.IC, SitCode.VC})


def _default_rules() -> dict[Outcome, RetryRule]:
    return {
        Outcome.BUSY: RetryRule(3, (120.0, 300.0, 600.0)),
        Outcome.NO_ANSWER: RetryRule(2, (600.0, 1200.0)),
        Outcome.MACHINE: RetryRule(2, (900.0, 1800.0)),
        Outcome.SIT: RetryRule(2, (600.0,)),
        Outcome.FAX: RetryRule(0),
        Outcome.SILENCE: RetryRule(2, (300.0,)),
        Outcome.REJECTED: RetryRule(0),
        Outcome.INVALID_NUMBER: RetryRule(0),
        Outcome.NETWORK_FAILURE: RetryRule(3, (60.0, 300.0)),
        Outcome.CUSTOMER_HUNG_UP: RetryRule(1, (300.0,)),
        Outcome.UNKNOWN: RetryRule(2, (120.0, 300.0)),
    }


@dataclass(frozen=True)
class RetryPolicy:
    """The retry ladder: a rule per outcome and a cap on all attempts.

    ``SIT`` with code IC or VC, and ``INVALID_NUMBER``, are never retried
    whatever the rules say, because the number cannot be reached.
    """

    rules: dict[Outcome, RetryRule] = field(default_factory=_default_rules)
    max_attempts: int = 5

    def __post_init__(self):
        if self.max_attempts < 1:
            raise ValidationError(
                "max_attempts", self.max_attempts, "send a count of at least 1"
            )
        for outcome in (Outcome.CONNECTED, Outcome.NOT_DIALED):
            if outcome in self.rules:
                raise ValidationError(
                    "rules", outcome.value, "remove it: it is never retried"
                )

    def next_delay(
        self,
        outcome: Outcome,
        sit_code: SitCode | None,
        retries_for_outcome: int,
        attempts: int,
    ) -> float | None:
        """Delay before the next attempt, or ``None`` when the ladder ends.

        Parameters
        ----------
        retries_for_outcome : int
            Attempts so far that ended with ``outcome``, this one included.
        attempts : int
            Attempts so far that counted, this one included.
        """
        if number_is_bad(outcome, sit_code):
            return None
        if attempts >= self.max_attempts:
            return None
        rule = self.rules.get(outcome)
        if rule is None or retries_for_outcome > rule.max_retries:
            return None
        return rule.delay_for(retries_for_outcome)


def number_is_bad(outcome: Outcome, sit_code: SitCode | None) -> bool:
    """Tell whether an outcome proves the number unreachable for good."""
    if outcome is Outcome.INVALID_NUMBER:
        return True
    return outcome is Outcome.SIT and sit_code in BAD_NUMBER_SIT_CODES


@dataclass(frozen=True)
class SmsPolicy:
    """The SMS sent when a promise cannot be kept.

    ``template`` is a ``str.format`` template with the fields ``queue``,
    ``promised_time`` (local, ``HH:MM``), ``callback_id`` and ``reason``.
    One template per language; ``default_language`` covers the rest.
    """

    templates: dict[str, str] = field(
        default_factory=lambda: {
            "en": (
                "We tried to call you back about your {queue} request but "
                "could not reach you. Reply CALL or call us again; "
                "reference {callback_id}."
            )
        }
    )
    default_language: str = "en"
    on_bad_number: bool = False
    """Also request an SMS when the number proved unreachable (SIT IC/VC)."""

    def render(self, language: str, **values: str) -> str:
        template = self.templates.get(language) or self.templates[self.default_language]
        return template.format(**values)


@dataclass(frozen=True)
class CapacityLimits:
    """Admin caps on callback releases, on top of the predictor's capacity.

    Attributes
    ----------
    interval_s : float
        Length of a capacity interval.
    max_per_interval : dict[str, int]
        Per queue: callbacks released (and booked) per interval at most;
        a queue missing here is limited by the predictor only.
    """

    interval_s: float = 900.0
    max_per_interval: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        # Bookings are counted per minute of the promised time, so intervals
        # are whole minutes.
        if self.interval_s <= 0 or self.interval_s % 60:
            raise ValidationError(
                "interval_s", self.interval_s, "send a positive multiple of 60 seconds"
            )
        for queue, limit in self.max_per_interval.items():
            if limit < 0:
                raise ValidationError(
                    f"max_per_interval[{queue}]", limit, "send 0 or more"
                )


# A lead longer than a few rings would take agents long before the
# customer's time.
MAX_DIAL_LEAD_S = 120.0


@dataclass(frozen=True)
class PromisePolicy:
    """How promises are made and kept.

    Attributes
    ----------
    keep_target : float
        Minimum keep probability of a customer-chosen time.
    predicted_quantile : float
        Quantile of the wait distribution used for ``PREDICTED`` promises.
    expiry_s : float
        A promise still pending this long after the end of its window, its
        promised time, or (``ASAP``) its first release time, expires.
    lease_s : float
        Lease of a dial order: the gateway must report or renew before it.
    dedicated_fallback_s : float
        A VIP's callback waits this long for the dedicated agent before any
        agent of the group may take it.
    overdue_grace_s : float
        A promise released later than this after its time is logged and
        journaled as overdue.
    booking_horizon_s : float
        How far ahead a timed promise may be booked.
    dial_lead_s : float
        Seconds before its time that a promise may be released, so that
        ringing and answer detection end near the promised time rather
        than that long after it. The release still waits for the
        customer's turn (no inbound caller who waited longer is
        overtaken), the free agents and an open callback window.
    dial_mode : DialMode
    dial_modes : dict[str, DialMode]
        Per-queue override of ``dial_mode``.
    """

    keep_target: float = 0.8
    predicted_quantile: float = 0.5
    expiry_s: float = 4 * 3600.0
    lease_s: float = 120.0
    dedicated_fallback_s: float = 300.0
    overdue_grace_s: float = 300.0
    booking_horizon_s: float = 2 * 86400.0
    dial_lead_s: float = 0.0
    dial_mode: DialMode = DialMode.CUSTOMER_FIRST
    dial_modes: dict[str, DialMode] = field(default_factory=dict)

    def __post_init__(self):
        if not 0.0 < self.keep_target <= 1.0:
            raise ValidationError(
                "keep_target", self.keep_target, "send a probability in (0, 1]"
            )
        if not 0.0 < self.predicted_quantile < 1.0:
            raise ValidationError(
                "predicted_quantile",
                self.predicted_quantile,
                "send a probability in (0, 1)",
            )
        for name in ("expiry_s", "lease_s", "booking_horizon_s"):
            if getattr(self, name) <= 0:
                raise ValidationError(
                    name, getattr(self, name), "send a positive number of seconds"
                )

        if not 0.0 <= self.dial_lead_s <= MAX_DIAL_LEAD_S:
            raise ValidationError(
                "dial_lead_s",
                self.dial_lead_s,
                f"send 0 to {MAX_DIAL_LEAD_S:g} seconds",
            )

    def dial_mode_for(self, queue: str) -> DialMode:
        return self.dial_modes.get(queue, self.dial_mode)


@dataclass(frozen=True)
class SchedulerPolicy:
    """Every policy of the scheduler, replaced part by part by admin setters."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sms: SmsPolicy = field(default_factory=SmsPolicy)
    capacity: CapacityLimits = field(default_factory=CapacityLimits)
    promise: PromisePolicy = field(default_factory=PromisePolicy)

    @classmethod
    def from_config(cls, config) -> SchedulerPolicy:
        """Build the policy from the ``[policy]`` section of a ``Config``."""
        section = config.policy
        promise = PromisePolicy(
            keep_target=section.keep_target,
            predicted_quantile=section.predicted_quantile,
            expiry_s=section.expiry_s,
            lease_s=section.lease_s,
            dedicated_fallback_s=section.dedicated_fallback_s,
            overdue_grace_s=section.overdue_grace_s,
            dial_lead_s=section.dial_lead_s,
            dial_mode=DialMode(section.dial_mode),
        )
        retry = RetryPolicy(max_attempts=section.max_attempts)
        capacity = CapacityLimits(interval_s=section.capacity_interval_s)
        sms = SmsPolicy(on_bad_number=section.sms_on_bad_number)
        return cls(retry=retry, sms=sms, capacity=capacity, promise=promise)


# Plain forms: policies travel in the journal and the settings table as
# msgpack maps, so each has a converter to built-in values and back.


def to_plain(value):
    """Convert a policy (nested dataclasses, enums, dates) to built-in values."""
    if is_dataclass(value):
        return {f.name: to_plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {to_plain(key): to_plain(item) for key, item in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(to_plain(item) for item in value)
    if isinstance(value, tuple | list):
        return [to_plain(item) for item in value]
    if isinstance(value, date | time):
        return value.isoformat()
    return value


def retry_policy_from_plain(plain: dict) -> RetryPolicy:
    rules = {
        Outcome(name): RetryRule(rule["max_retries"], tuple(rule["delays_s"]))
        for name, rule in plain["rules"].items()
    }
    return RetryPolicy(rules=rules, max_attempts=plain["max_attempts"])


def sms_policy_from_plain(plain: dict) -> SmsPolicy:
    return SmsPolicy(**plain)


def capacity_limits_from_plain(plain: dict) -> CapacityLimits:
    return CapacityLimits(
        interval_s=plain["interval_s"], max_per_interval=plain["max_per_interval"]
    )


def promise_policy_from_plain(plain: dict) -> PromisePolicy:
    values = dict(plain)
    values["dial_mode"] = DialMode(values["dial_mode"])
    values["dial_modes"] = {q: DialMode(m) for q, m in values["dial_modes"].items()}
    return PromisePolicy(**values)

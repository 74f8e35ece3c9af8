"""Administration of the callback scheduler: policies, calendars, rules.

Each setter stores the new value in the store's settings table and
journals a ``policy.changed`` event in one commit, before the value
applies. A scheduler started on the same store loads them back, so admin
changes survive a restart.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from callsure.engine import policy as policies
from callsure.engine.customers import (
    GradeRules,
    RepeatCallerRule,
    grade_rules_from_plain,
    repeat_rule_from_plain,
)
from callsure.engine.store import journal
from callsure.engine.store.interface import Change
from callsure.engine.store.journal import decode_payload, encode_payload
from callsure.engine.windows import CallbackCalendar, calendar_from_plain

logger = logging.getLogger(__name__)


class SchedulerAdministration:
    """Admin setters of ``CallbackScheduler`` (a mixin over its ``store``,
    ``clock``, ``policy``, ``calendars`` and customer rules)."""

    def calendar_for(self, queue: str) -> CallbackCalendar:
        return self.calendars.get(queue) or self.calendars["*"]

    def calendar_in_force(self, queue: str) -> tuple[CallbackCalendar, str]:
        """Return the calendar of ``queue`` and the name it is stored under:
        ``queue`` itself, or ``"*"`` when the default calendar applies."""
        name = queue if queue in self.calendars else "*"
        return self.calendars[name], name

    def set_calendar(self, queue: str, calendar: CallbackCalendar) -> None:
        """Set the callback windows of ``queue`` (``"*"``: the default)."""
        calendars = {**self.calendars, queue: calendar}
        self._save_setting(
            "calendars", {name: policies.to_plain(c) for name, c in calendars.items()}
        )
        self.calendars = calendars

    def set_retry_policy(self, retry: policies.RetryPolicy) -> None:
        self._set_policy("retry", retry)

    def set_sms_policy(self, sms: policies.SmsPolicy) -> None:
        self._set_policy("sms", sms)

    def set_capacity_limits(self, capacity: policies.CapacityLimits) -> None:
        self._set_policy("capacity", capacity)

    def set_promise_policy(self, promise: policies.PromisePolicy) -> None:
        self._set_policy("promise", promise)

    def set_grade_rules(self, rules: GradeRules) -> None:
        """Store grade rules; the customer shards read them back with
        ``grade_rules``."""
        self._save_setting("grade_rules", policies.to_plain(rules))
        self.grade_rules = rules

    def set_repeat_caller_rule(self, rule: RepeatCallerRule) -> None:
        self._save_setting("repeat_caller_rule", policies.to_plain(rule))
        self.repeat_caller_rule = rule

    def _set_policy(self, part: str, value) -> None:
        self._save_setting(part, policies.to_plain(value))
        self.policy = replace(self.policy, **{part: value})

    def _save_setting(self, name: str, plain) -> None:
        now = self.clock.now()
        change = Change(settings={name: encode_payload({"value": plain})})
        change.event(now, journal.POLICY_CHANGED, "", part=name, value=plain)
        self.store.commit(change)
        logger.info("scheduler: policy %s changed", name)

    def _load_settings(self) -> None:
        loaders = {
            "retry": policies.retry_policy_from_plain,
            "sms": policies.sms_policy_from_plain,
            "capacity": policies.capacity_limits_from_plain,
            "promise": policies.promise_policy_from_plain,
        }
        for part, load in loaders.items():
            plain = self._setting(part)
            if plain is not None:
                self.policy = replace(self.policy, **{part: load(plain)})
        calendars = self._setting("calendars")
        if calendars is not None:
            self.calendars = {
                name: calendar_from_plain(plain) for name, plain in calendars.items()
            }
        rules = self._setting("grade_rules")
        if rules is not None:
            self.grade_rules = grade_rules_from_plain(rules)
        rule = self._setting("repeat_caller_rule")
        if rule is not None:
            self.repeat_caller_rule = repeat_rule_from_plain(rule)

    def _setting(self, name: str):
        data = self.store.get_setting(name)
        return None if data is None else decode_payload(data)["value"]

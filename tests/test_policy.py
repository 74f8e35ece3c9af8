"""Retry ladder, SMS templates, capacity limits and their plain forms."""

from __future__ import annotations

import pickle

import pytest

from callsure.engine.callbacks import DialMode, Outcome, SitCode
from callsure.engine.config import load_config
from callsure.engine.exceptions import ValidationError
from callsure.engine.policy import (
    CapacityLimits,
    PromisePolicy,
    RetryPolicy,
    RetryRule,
    SchedulerPolicy,
    SmsPolicy,
    capacity_limits_from_plain,
    number_is_bad,
    promise_policy_from_plain,
    retry_policy_from_plain,
    sms_policy_from_plain,
    to_plain,
)


def test_busy_ladder_uses_delays_in_order():
    policy = RetryPolicy(rules={Outcome.BUSY: RetryRule(3, (60.0, 120.0))})
    delays = [policy.next_delay(Outcome.BUSY, None, n, n) for n in (1, 2, 3, 4)]
    assert delays == [60.0, 120.0, 120.0, None]


def test_max_attempts_ends_ladder():
    policy = RetryPolicy(
        rules={Outcome.NO_ANSWER: RetryRule(10, (60.0,))}, max_attempts=2
    )
    assert policy.next_delay(Outcome.NO_ANSWER, None, 1, 1) == 60.0
    assert policy.next_delay(Outcome.NO_ANSWER, None, 2, 2) is None


@pytest.mark.parametrize("code", [SitCode.IC, SitCode.VC])
def test_disconnected_sit_never_retried(code):
    policy = RetryPolicy(rules={Outcome.SIT: RetryRule(5, (60.0,))})
    assert number_is_bad(Outcome.SIT, code)
    assert policy.next_delay(Outcome.SIT, code, 1, 1) is None


@pytest.mark.parametrize("code", [SitCode.NC, SitCode.RO, SitCode.IO, None])
def test_congestion_sit_retried(code):
    policy = RetryPolicy(rules={Outcome.SIT: RetryRule(2, (600.0,))})
    assert not number_is_bad(Outcome.SIT, code)
    assert policy.next_delay(Outcome.SIT, code, 1, 1) == 600.0


def test_invalid_number_never_retried():
    policy = RetryPolicy(rules={Outcome.INVALID_NUMBER: RetryRule(3, (60.0,))})
    assert policy.next_delay(Outcome.INVALID_NUMBER, None, 1, 1) is None


def test_outcome_without_rule_ends_ladder():
    policy = RetryPolicy(rules={})
    assert policy.next_delay(Outcome.FAX, None, 1, 1) is None


def test_connected_rule_rejected():
    with pytest.raises(ValidationError, match="never retried"):
        RetryPolicy(rules={Outcome.CONNECTED: RetryRule(1)})


def test_negative_delay_rejected():
    with pytest.raises(ValidationError, match="delays"):
        RetryRule(1, (-5.0,))


def test_sms_template_falls_back_to_default_language():
    sms = SmsPolicy(
        templates={"en": "Sorry {callback_id}", "de": "Leider {callback_id}"}
    )
    assert sms.render("de", callback_id="x") == "Leider x"
    assert sms.render("fr", callback_id="x") == "Sorry x"


def test_promise_policy_checks_probabilities():
    with pytest.raises(ValidationError, match="keep_target"):
        PromisePolicy(keep_target=1.5)


def test_capacity_limits_reject_negative_cap():
    with pytest.raises(ValidationError):
        CapacityLimits(max_per_interval={"billing": -1})


def test_policies_round_trip_plain_forms():
    retry = RetryPolicy()
    sms = SmsPolicy(on_bad_number=True)
    capacity = CapacityLimits(interval_s=600.0, max_per_interval={"billing": 4})
    promise = PromisePolicy(dial_modes={"vip": DialMode.AGENT_FIRST})
    assert retry_policy_from_plain(to_plain(retry)) == retry
    assert sms_policy_from_plain(to_plain(sms)) == sms
    assert capacity_limits_from_plain(to_plain(capacity)) == capacity
    assert promise_policy_from_plain(to_plain(promise)) == promise


def test_policy_pickles():
    policy = SchedulerPolicy()
    assert pickle.loads(pickle.dumps(policy)) == policy


def test_policy_from_config_section():
    config = load_config(env={"CALLSURE_POLICY__DIAL_MODE": "agent_first"})
    policy = SchedulerPolicy.from_config(config)
    assert policy.promise.dial_mode is DialMode.AGENT_FIRST
    assert policy.retry.max_attempts == config.policy.max_attempts

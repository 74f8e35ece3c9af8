"""Inputs and figures of the contact-center simulation, from the real log.

``DayWorkload`` turns a day of the bank's call log into calls, patience,
redials and shifts; ``summary.targets`` checks the replay's targets. The
replay of whole days is in ``test_simulation_replay.py``.
"""

from __future__ import annotations

from datetime import date

import pytest

from callsure.engine.calllog import read_call_log
from callsure.engine.simulation import ReplayOptions, summary
from callsure.engine.simulation.workload import DayWorkload

DAY = date(1999, 2, 9)


@pytest.fixture(scope="module")
def log(bank_log):
    return read_call_log(bank_log)


@pytest.fixture(scope="module")
def workload(log):
    return DayWorkload.from_log(log, DAY)


def test_workload_patience_of_abandoners_is_logged_wait(log, workload):
    by_line = {record.line: record for record in log.records}
    abandoners = [c for c in workload.calls if c.log_outcome == "HANG"]
    assert abandoners
    for call in abandoners:
        assert call.patience_s == pytest.approx(by_line[call.line].wait_s)


def test_workload_patience_of_served_is_censored(log, workload):
    by_line = {record.line: record for record in log.records}
    served = [c for c in workload.calls if c.log_outcome == "AGENT"]
    for call in served:
        assert call.patience_s >= (by_line[call.line].wait_s or 0.0)


def test_workload_redials_follow_abandoned_call(log, workload):
    by_line = {call.line: call for call in workload.calls}
    redials = [c for c in workload.calls if c.redial_of is not None]
    assert redials
    for call in redials:
        previous = by_line[call.redial_of]
        assert previous.customer == call.customer
        assert previous.log_outcome == "HANG"
        assert previous.arrival <= call.arrival


def test_workload_shifts_cover_every_service(log, workload):
    shifts = {}
    for shift in workload.shifts:
        shifts.setdefault(shift.agent, []).append(shift)
    lines = {call.line for call in workload.calls}
    day_records = [r for r in log.records if r.served and r.server and r.line in lines]
    for record in day_records:
        assert any(
            s.start <= record.ser_start and record.ser_exit <= s.end
            for s in shifts[record.server]
        ), f"service on line {record.line} outside the shifts of {record.server}"


def test_workload_unknown_day_names_range(log):
    with pytest.raises(Exception, match="choose a day of the log"):
        DayWorkload.from_log(log, date(1999, 3, 1))


def test_options_reject_bad_probability():
    with pytest.raises(Exception, match="accept_probability"):
        ReplayOptions(accept_probability=1.5)


def test_summary_targets_flag_unmet():
    baseline = {
        "calls": {"redials": 10, "service_level_live": 0.7},
        "redial_to_service": {"mean_s": 1000.0},
    }
    callbacks = {
        "calls": {"redials": 5, "service_level_live": 0.6},
        "callbacks": {
            "dialed_on_time_share": 0.5,
            "kept_share_of_answered": 0.99,
            "request_to_service": {"mean_s": 50.0},
        },
    }
    checks = summary.targets(baseline, callbacks)
    assert not checks["redial_cut"]["met"]
    assert not checks["dialed_on_time_share"]["met"]
    assert checks["kept_share_of_answered"]["met"]
    assert checks["request_to_service_speedup"]["met"]
    assert not checks["service_level_live_not_lower"]["met"]

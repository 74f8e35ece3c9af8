"""The demo's parts without SIP: workload from the real log, desk, IVR helpers."""

from __future__ import annotations

import shutil
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from callsure.actors.cli import cli
from callsure.actors.demo.backend import next_local_time
from callsure.actors.demo.callers import TIME_KEYS_S, keyed_time
from callsure.actors.demo.desk import SERVICE_LEVEL_TIME_S, Desk
from callsure.actors.demo.reservations import HOLD_LIMIT_S, CallbackNeed
from callsure.actors.demo.runner import retry_ladder
from callsure.actors.demo.workload import (
    DEFAULT_LOG,
    DEFAULT_RECORDINGS,
    PREMIUM,
    QUICK_START,
    RETAIL,
    VIP_AGENT,
    DemoCall,
    DemoWorkload,
)
from callsure.engine.exceptions import InvalidTimeError, ValidationError

AGENTS = {RETAIL: 4, PREMIUM: 2}


def build(start=QUICK_START, minutes=15.0, speed=15.0, seed=7, log=DEFAULT_LOG):
    return DemoWorkload.build(
        log, DEFAULT_RECORDINGS, start, minutes, speed, seed, AGENTS
    )


@pytest.fixture(scope="module")
def quick():
    return build()


def test_workload_maps_types_to_groups(quick):
    groups = Counter(call.group for call in quick.calls)
    assert set(groups) <= {RETAIL, PREMIUM}
    assert groups[RETAIL] > 0
    assert groups[PREMIUM] > 0


def test_workload_compresses_arrivals(quick):
    arrivals = [call.arrival_s for call in quick.calls]
    assert arrivals == sorted(arrivals)
    assert arrivals[0] == pytest.approx(1.0)
    assert arrivals[-1] <= 15 * 60 / 15 + 1.0


def test_workload_patience_only_for_abandoners(quick):
    abandoners = [call for call in quick.calls if call.patience_s is not None]
    assert abandoners
    for call in abandoners:
        assert call.patience_s == pytest.approx(call.log_wait_s / 15)


def test_workload_vip_agent_and_customers(quick):
    assert quick.agents[PREMIUM][0] == VIP_AGENT
    assert len(quick.agents[RETAIL]) == 4
    vip_groups = {c.group for c in quick.calls if c.customer_id in quick.vip_customers}
    assert vip_groups == {PREMIUM}


def test_workload_numbers_are_e164_and_distinct(quick):
    numbers = {call.customer_id: call.phone_number for call in quick.calls}
    assert len(set(numbers.values())) == len(numbers)
    for number in numbers.values():
        assert number.startswith("+1555")
        assert len(number) == 12


def test_workload_answers_follow_seed(quick):
    again = build()
    other = build(seed=8)
    assert again.answers == quick.answers
    assert other.answers != quick.answers


def test_workload_answer_mix_mostly_persons():
    day = build(start="1999-02-09T08:00", minutes=600, speed=12)
    first = Counter()
    for plan in day.answers.values():
        behaviour = plan[0]
        if behaviour["action"] == "ring":
            first["NO_ANSWER"] += 1
        elif behaviour["action"] == "reject":
            first["BUSY"] += 1
        else:
            first[day.truth[behaviour["play"]]] += 1
    total = sum(first.values())
    assert total > 300
    assert 0.5 < first["HUMAN"] / total < 0.75
    assert first["MACHINE"] > 0
    assert first["SIT"] > 0
    assert first["BUSY"] > 0


def test_workload_failed_first_answer_has_redial(quick):
    for plan in quick.answers.values():
        if plan[0]["action"] != "answer" or quick.truth[plan[0]["play"]] != "HUMAN":
            assert len(plan) == 2
        else:
            assert len(plan) == 1


def test_workload_forecast_misses_the_surge(quick):
    forecast = quick.forecasts[RETAIL]
    retail = [call for call in quick.calls if call.group == RETAIL]
    surge_rate = len(retail) / (retail[-1].arrival_s - retail[0].arrival_s)
    assert forecast.arrivals_per_s < surge_rate
    assert forecast.agents_on_duty == 4.0


def test_workload_rejects_quiet_window():
    with pytest.raises(ValidationError, match="queued calls"):
        build(start="1999-02-03T03:00", minutes=5)


def test_workload_rejects_bad_start():
    with pytest.raises(ValidationError, match="local time"):
        build(start="3 February")


def test_workload_reads_plain_log(bank_log, quick):
    plain = build(log=bank_log)
    assert [c.line for c in plain.calls] == [c.line for c in quick.calls]


def test_workload_rejects_broken_gzip_log(tmp_path):
    broken = tmp_path / "calls.tsv.gz"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(ValidationError, match="calls.tsv.gz.*not a readable gzip"):
        build(log=broken)


def test_recordings_without_labels_rejected(tmp_path):
    shutil.copy(DEFAULT_RECORDINGS / "dev-0001.wav", tmp_path)
    with pytest.raises(ValidationError, match="labels.csv"):
        DemoWorkload.build(DEFAULT_LOG, tmp_path, QUICK_START, 15, 15, 1, AGENTS)


def test_recordings_missing_wav_rejected(tmp_path):
    shutil.copy(DEFAULT_RECORDINGS / "labels.csv", tmp_path)
    with pytest.raises(ValidationError, match=r"dev-0000\.wav listed in labels.csv"):
        DemoWorkload.build(DEFAULT_LOG, tmp_path, QUICK_START, 15, 15, 1, AGENTS)


def test_recordings_without_human_rejected(tmp_path):
    shutil.copy(DEFAULT_RECORDINGS / "dev-0000.wav", tmp_path)
    (tmp_path / "labels.csv").write_text("file,label\ndev-0000.wav,MACHINE\n")
    with pytest.raises(ValidationError, match="HUMAN"):
        DemoWorkload.build(DEFAULT_LOG, tmp_path, QUICK_START, 15, 15, 1, AGENTS)


def test_keyed_time_rejects_bad_digits():
    zone = ZoneInfo("Asia/Jerusalem")
    for keyed in ("2400", "1260", "12a4", "123"):
        with pytest.raises(InvalidTimeError):
            next_local_time(keyed, zone)


@pytest.mark.parametrize(
    ("keyed", "expected"),
    [
        # The current minute means now, not tomorrow.
        ("0749", datetime(2026, 12, 6, 7, 49, 6)),
        ("0750", datetime(2026, 12, 6, 7, 50)),
        ("2359", datetime(2026, 12, 6, 23, 59)),
        ("0748", datetime(2026, 12, 7, 7, 48)),
        ("0000", datetime(2026, 12, 7, 0, 0)),
    ],
)
def test_keyed_time_is_next_occurrence(keyed, expected):
    zone = ZoneInfo("Asia/Jerusalem")
    now = datetime(2026, 12, 6, 7, 49, 6, tzinfo=zone)
    assert next_local_time(keyed, zone, now) == expected


@pytest.mark.parametrize("second", [0, 6, 30, 59])
def test_demo_caller_keys_time_ahead(second):
    zone = ZoneInfo("Asia/Jerusalem")
    dialed = datetime(2026, 12, 6, 7, 49, second, tzinfo=zone)
    keyed = keyed_time(dialed)
    requested = dialed.replace(hour=int(keyed[:2]), minute=int(keyed[2:]), second=0)
    lead_s = (requested - dialed).total_seconds() - TIME_KEYS_S
    assert lead_s >= 60
    assert lead_s <= 180


def test_demo_caller_keyed_time_passes_midnight():
    zone = ZoneInfo("Asia/Jerusalem")
    assert keyed_time(datetime(2026, 12, 6, 23, 58, 30, tzinfo=zone)) == "0000"


def test_retry_ladder_compressed_and_bounded():
    for _, retries, delay_s in retry_ladder(12.0):
        assert retries >= 1
        assert 5.0 <= delay_s <= 20.0


def desk_with(calls, needs=(), agents=("retail-1",), to_ivr=()):
    """A desk on ``calls`` whose callbacks waiting are ``needs`` (a list the
    test may change); callers in ``to_ivr`` go to the IVR."""
    workload = DemoWorkload(
        calls=calls,
        speed=10.0,
        start_local=datetime(1999, 2, 3, 13, tzinfo=ZoneInfo("Asia/Jerusalem")),
        duration_s=10.0,
        agents={RETAIL: list(agents)},
        vip_customers=[],
        answers={},
    )
    states: list[tuple[str, bool]] = []
    desk = Desk(
        workload,
        lambda agent, busy: states.append((agent, busy)),
        lambda call: call.phone_number in to_ivr,
        lambda group: list(needs),
    )
    return desk, states


def call(number: str, arrival_s: float, patience_s=None, handle_s=30.0):
    return DemoCall(
        line=1,
        customer_id=f"c{number}",
        phone_number=number,
        group=RETAIL,
        arrival_s=arrival_s,
        handle_s=handle_s,
        patience_s=patience_s,
        log_wait_s=0.0,
    )


def run_desk(desk, until_s: float, tick_s: float = 0.05) -> None:
    """Step ``desk`` in its own time from its last step to ``until_s``."""
    now = getattr(desk, "_test_now", 0.0)
    while now <= until_s:
        desk.step(now)
        now = round(now + tick_s, 6)
    desk._test_now = now


def test_desk_serves_first_and_abandons_second():
    desk, states = desk_with([call("+1", 0.0), call("+2", 0.1, patience_s=0.3)])
    run_desk(desk, 1.5)
    assert desk.stats.answered == 1
    assert desk.stats.abandoned == 1
    assert states == [("retail-1", True)]


def test_desk_reserves_agent_for_dialed_callback():
    dialing = CallbackNeed("cb_1/1", "+9", dialing=True)
    desk, states = desk_with([call("+1", 0.0)], needs=[dialing])
    run_desk(desk, 1.0)
    assert desk.stats.answered == 0
    assert desk.reserved_agents() == 1
    desk.on_agent_leg("agents#1", RETAIL, "cb_1/1")
    run_desk(desk, 1.5)
    assert desk.agents["retail-1"].callbacks_served == 1
    assert desk.reserved_agents() == 0
    assert states == [("retail-1", True)]


def test_desk_reservation_ends_at_hold_limit():
    # The callback stays listed (its leg never arrives); after the limit
    # the agent serves the queue and is not reserved again.
    dialing = CallbackNeed("cb_1/1", "+9", dialing=True)
    calls = [call("+1", 0.0, handle_s=100.0), call("+2", 0.0), call("+3", 0.0)]
    desk, _ = desk_with(calls, needs=[dialing], agents=("retail-1", "retail-2"))
    run_desk(desk, HOLD_LIMIT_S - 1.0)
    assert desk.stats.answered == 1
    assert desk.reserved_agents() == 1
    run_desk(desk, HOLD_LIMIT_S + 1.0)
    assert desk.stats.answered == 2
    assert desk.reserved_agents() == 0
    run_desk(desk, HOLD_LIMIT_S + 40.0)
    assert desk.stats.answered == 3


def test_desk_keeps_one_agent_for_late_callers():
    # One agent and a callback being dialed: once the caller has waited
    # past the service-level time, the agent serves the caller.
    dialing = CallbackNeed("cb_1/1", "+9", dialing=True)
    desk, _ = desk_with([call("+1", 0.0)], needs=[dialing])
    run_desk(desk, 1.0)
    assert desk.stats.answered == 0
    run_desk(desk, SERVICE_LEVEL_TIME_S / desk.speed + 0.2)
    assert desk.stats.answered == 1
    assert desk.stats.answered_in_target == 0


def test_desk_callback_keeps_callers_place():
    # +9 entered first and took a callback "when an agent is free", and +2
    # entered later and waits live. The freed agent is reserved for +9.
    calls = [call("+1", 0.0, handle_s=1.0), call("+9", 0.0), call("+2", 0.5)]
    needs: list = []
    desk, _ = desk_with(calls, needs=needs, to_ivr={"+9"})
    run_desk(desk, 0.2)
    desk.on_promise("+9")
    needs.append(CallbackNeed("cb_9/1", "+9", dialing=False))
    run_desk(desk, 1.5)
    assert desk.stats.answered == 1
    assert desk.reserved_agents() == 1


def test_desk_callback_waits_behind_earlier_caller():
    calls = [call("+1", 0.0, handle_s=1.0), call("+2", 0.0), call("+9", 0.5)]
    needs: list = []
    desk, _ = desk_with(calls, needs=needs, to_ivr={"+9"})
    run_desk(desk, 0.7)
    desk.on_promise("+9")
    needs.append(CallbackNeed("cb_9/1", "+9", dialing=False))
    run_desk(desk, 1.5)
    assert desk.stats.answered == 2
    assert desk.reserved_agents() == 0


def test_desk_promise_takes_caller_out_of_queue():
    desk, _ = desk_with([call("+1", 0.0, handle_s=30.0), call("+2", 0.0)])
    run_desk(desk, 0.5)
    desk.on_promise("+2")
    run_desk(desk, 1.0)
    assert desk.stats.left_with_promise == 1
    assert desk.queue_lengths() == {RETAIL: 0}


def test_tally_skips_callback_in_retry_delay():
    from datetime import UTC, timedelta

    from callsure.actors.demo.tally import Tally
    from callsure.engine.callbacks import Event
    from callsure.v1 import callback_pb2

    desk, _ = desk_with([call("+9", 0.0)])
    tally = Tally(desk.workload, keep_window_s=30.0)
    message = callback_pb2.Callback(name="callbacks/cb_9", queue=RETAIL)
    tally.on_promise("+9", "asap", message)
    assert [n.attempt_id for n in tally.callbacks_waiting(RETAIL)] == ["cb_9/1"]
    now = datetime.now(UTC)
    row = {
        "state": "pending",
        "last_attempt": 1,
        "not_before": (now + timedelta(seconds=30)).timestamp(),
    }
    retry = Event(1, now, "callback.retry_scheduled", "cb_9", {"callback": row})
    tally.on_journal_event(retry)
    assert tally.callbacks_waiting(RETAIL) == []
    row["not_before"] = (now - timedelta(seconds=1)).timestamp()
    tally.on_journal_event(Event(2, now, "callback.updated", "cb_9", {"callback": row}))
    assert [n.attempt_id for n in tally.callbacks_waiting(RETAIL)] == ["cb_9/2"]


def test_report_accounts_for_every_caller():
    from callsure.actors.demo.runner import DemoOptions
    from callsure.actors.demo.tally import Tally

    calls = [
        call("+1", 0.0, handle_s=100.0),
        call("+2", 0.0, patience_s=0.5),
        call("+3", 0.0),
        call("+9", 0.0),
    ]
    desk, _ = desk_with(calls, to_ivr={"+9"})
    run_desk(desk, 0.2)
    desk.on_promise("+9")
    run_desk(desk, 2.0)
    tally = Tally(desk.workload, keep_window_s=30.0)
    tally.desk = desk
    options = DemoOptions(
        DEFAULT_LOG, DEFAULT_RECORDINGS, QUICK_START, 1.0, 10.0, 1, 0.0, 1, 1
    )
    live = tally.report(options, elapsed_s=2.0, server="")["live"]
    assert live["arrived"] == 4
    assert live["answered"] == 1
    assert live["abandoned"] == 1
    assert live["left_with_promise"] == 1
    assert live["waiting_at_end"] == 1
    accounted = (
        live["answered"]
        + live["abandoned"]
        + live["left_with_promise"]
        + live["waiting_at_end"]
    )
    assert accounted == live["arrived"]


def test_live_view_shows_queues_and_counts():
    import io

    from callsure.actors.demo.tally import Tally
    from callsure.actors.demo.view import LiveView

    desk, _ = desk_with([call("+1", 0.0), call("+2", 0.0)])
    run_desk(desk, 0.3)
    tally = Tally(desk.workload, keep_window_s=30.0)
    tally.desk = desk
    view = LiveView(io.StringIO())
    view._tally = tally
    screen = view.render()
    line = view.line()
    assert "retail" in screen
    assert "answered 1" in screen
    assert "queue retail=1" in line
    assert "\n" not in line


@pytest.mark.parametrize(
    ("option", "value"), [("--speed", "nan"), ("--minutes", "nan"), ("--drain", "inf")]
)
def test_demo_rejects_non_finite_option(option, value):
    # Rejected while the options are read, before anything starts.
    result = CliRunner().invoke(cli, ["demo", option, value])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output

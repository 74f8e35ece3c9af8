"""Days of promises in virtual time across a daylight-saving change and a holiday.

Europe/Berlin moves its clocks from 02:00 to 03:00 on Sunday 29 March
2026, and Monday 30 March is a company holiday here. Customers ask for
callbacks around the clock in every mode; a simulated gateway dials every
order and reports seeded random outcomes.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from scheduler_support import make_scheduler, request

from callsure.engine.callbacks import CallbackMode, CallbackState, Outcome, SitCode
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import InfeasibleTimeError, InvalidTimeError
from callsure.engine.scheduler import interval_start
from callsure.engine.windows import CallbackCalendar, Period

BERLIN = ZoneInfo("Europe/Berlin")
START = datetime(2026, 3, 28, 5, 0, tzinfo=UTC)  # Saturday 06:00 local
END = datetime(2026, 3, 31, 16, 0, tzinfo=UTC)  # Tuesday 18:00 local
HOLIDAY = date(2026, 3, 30)
STEP_S = 300
CAP = 6

CALENDAR = CallbackCalendar(
    time_zone="Europe/Berlin",
    weekly={
        weekday: (
            Period("morning", time(8), time(12)),
            Period("afternoon", time(13), time(20)),
        )
        for weekday in range(7)
    },
    holiday_country="DE",
    extra_holidays=frozenset({HOLIDAY}),
)

OUTCOMES = [
    (Outcome.CONNECTED, 0.70),
    (Outcome.BUSY, 0.15),
    (Outcome.NO_ANSWER, 0.10),
    (Outcome.SIT, 0.05),
]


def ask(scheduler, clock, index: int, gap_hits: list):
    """One customer's request; an infeasible time is replaced by the offer,
    a time in the daylight-saving gap by the hour after it."""
    now_local = clock.now().astimezone(BERLIN)
    kind = index % 3
    if kind == 0:
        return scheduler.create(request(f"c{index}"))
    if kind == 1:
        wanted = (now_local + timedelta(hours=2)).replace(
            minute=0, second=0, microsecond=0, tzinfo=None
        )
        try:
            try:
                return scheduler.create(
                    request(
                        f"c{index}",
                        mode=CallbackMode.AT_TIME,
                        requested_local_time=wanted,
                        time_zone="Europe/Berlin",
                    )
                )
            except InvalidTimeError:
                gap_hits.append(wanted)
                return scheduler.create(
                    request(
                        f"c{index}",
                        mode=CallbackMode.AT_TIME,
                        requested_local_time=wanted + timedelta(hours=1),
                        time_zone="Europe/Berlin",
                    )
                )
        except InfeasibleTimeError as error:
            assert error.nearest_feasible is not None
            return scheduler.create(
                request(
                    f"c{index}",
                    mode=CallbackMode.AT_TIME,
                    requested_time=error.nearest_feasible,
                )
            )
    next_day = now_local.date() + timedelta(days=1)
    while not CALENDAR.windows_on(next_day):
        next_day += timedelta(days=1)
    return scheduler.create(
        request(
            f"c{index}",
            mode=CallbackMode.WINDOW,
            window_date=next_day,
            window_period="morning",
        )
    )


@pytest.mark.slow
def test_days_across_dst_and_holiday(tmp_path):
    clock = VirtualClock(START)
    scheduler = make_scheduler(tmp_path / "day.db", clock, cap=CAP)
    scheduler.set_calendar("*", CALENDAR)
    rng = random.Random(7)

    with pytest.raises(InvalidTimeError, match="does not exist"):
        scheduler.create(
            request(
                "night-owl",
                mode=CallbackMode.AT_TIME,
                requested_local_time=datetime(2026, 3, 29, 2, 30),
                time_zone="Europe/Berlin",
            )
        )

    created: dict[str, object] = {}
    gap_hits: list[datetime] = []
    releases = []  # (time, order)
    index = 0
    while clock.now() < END:
        if clock.now().minute % 20 == 0 and clock.now().second == 0:
            callback = ask(scheduler, clock, index, gap_hits)
            created[callback.callback_id] = callback
            index += 1
        for order in scheduler.due():
            releases.append((clock.now(), order))
            scheduler.start_dialing(order.attempt_id, "gw")
            outcome = rng.choices([o for o, _ in OUTCOMES], [w for _, w in OUTCOMES])[0]
            sit = SitCode.IC if outcome is Outcome.SIT else None
            scheduler.report_outcome(order.attempt_id, outcome, sit_code=sit)
        clock.advance(STEP_S)

    assert len(created) == index
    assert gap_hits == [datetime(2026, 3, 29, 2, 0)]
    assert len(releases) > index / 2

    # Every release falls inside an open window, never on the holiday.
    for when, order in releases:
        assert CALENDAR.is_open(when), (when, order.callback_id)
        assert when.astimezone(BERLIN).date() != HOLIDAY

    # The first release of each day follows the local 08:00, whatever the offset.
    first_of_day = {}
    for when, _ in releases:
        local_date = when.astimezone(BERLIN).date()
        first_of_day.setdefault(local_date, when)
    assert first_of_day[date(2026, 3, 28)] >= datetime(2026, 3, 28, 7, 0, tzinfo=UTC)
    assert first_of_day[date(2026, 3, 29)] >= datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert first_of_day[date(2026, 3, 31)] == datetime(2026, 3, 31, 6, 0, tzinfo=UTC)

    # Nothing is released before its promised time.
    for when, order in releases:
        if order.promised_time is not None:
            assert when >= order.promised_time

    # No interval releases more than the cap.
    per_interval = Counter(interval_start(when, 900.0) for when, _ in releases)
    assert max(per_interval.values()) <= CAP

    # Tuesday's backlog of first attempts goes out in original entry order.
    tuesday = [
        order
        for when, order in releases
        if when.astimezone(BERLIN).date() == date(2026, 3, 31)
        and order.attempt_number == 1
        and order.promised_time is None
    ]
    entries = [order.entry_time for order in tuesday]
    assert len(tuesday) >= CAP
    assert entries[: CAP * 4] == sorted(entries[: CAP * 4])

    # No promise was lost: each one is final or still waiting for its time.
    states = Counter()
    for callback_id in created:
        callback = scheduler.get(callback_id)
        states[callback.state] += 1
        if callback.state is CallbackState.PENDING:
            assert callback.not_before >= END - timedelta(seconds=STEP_S)
    assert sum(states.values()) == len(created)
    assert states[CallbackState.COMPLETED] > 0
    assert states[CallbackState.DIALING] == 0

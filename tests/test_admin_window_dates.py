"""Callback windows of single dates: UpdateCallbackWindows date_periods.

A date's periods replace its weekday's, and they apply on a date of
closed_dates too. The first tests convert requests without a server. The
others run one `callsure serve`, create callbacks on the dates set, use
``callsure client admin`` and restart the server once with SIGTERM.
Dates are counted from today in the calendar's zone, because a callback
can only be booked within the default booking horizon of 2 days.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
from click.testing import CliRunner
from google.protobuf import json_format
from google.rpc import error_details_pb2
from serve_support import RestartableServer

from callsure.actors.cli import cli
from callsure.actors.errors import decode_status
from callsure.actors.services.admin import (
    MAX_DATE_COUNT,
    MAX_PERIODS_PER_DAY,
    calendar_from_request,
    calendar_to_response,
)
from callsure.engine.exceptions import ValidationError
from callsure.engine.windows import Period
from callsure.v1 import admin_pb2, admin_pb2_grpc, callback_pb2, callback_pb2_grpc

CALL_TIMEOUT_S = 60.0
ZONE = "Europe/Berlin"
TODAY = datetime.now(ZoneInfo(ZONE)).date()
# Open by its own periods, although it is also in closed_dates.
SPECIAL_DAY = TODAY + timedelta(days=1)
# Closed by an entry without periods, although its weekday has a morning.
CLOSED_DAY = TODAY + timedelta(days=2)


def weekday_period(weekday, name, start, end):
    return admin_pb2.CallbackPeriod(
        weekday=weekday, name=name, start_local_time=start, end_local_time=end
    )


def date_period(name, start, end):
    return admin_pb2.DatePeriod(name=name, start_local_time=start, end_local_time=end)


def windows_request(queue: str) -> admin_pb2.UpdateCallbackWindowsRequest:
    """A calendar open every morning, with the afternoon of SPECIAL_DAY in
    place of its morning and CLOSED_DAY closed."""
    return admin_pb2.UpdateCallbackWindowsRequest(
        queue=queue,
        time_zone=ZONE,
        periods=[
            weekday_period(weekday, "morning", "08:00", "12:00")
            for weekday in range(1, 8)
        ],
        closed_dates=[SPECIAL_DAY.isoformat()],
        date_periods=[
            admin_pb2.DatePeriods(
                date=SPECIAL_DAY.isoformat(),
                periods=[
                    date_period("afternoon", "14:00", "16:00"),
                    date_period("evening", "18:00", "00:00"),
                ],
            ),
            admin_pb2.DatePeriods(date=CLOSED_DAY.isoformat()),
        ],
    )


def as_update(response):
    """Parse a GetCallbackWindowsResponse as the Update request it came from."""
    request = admin_pb2.UpdateCallbackWindowsRequest.FromString(
        response.SerializeToString()
    )
    request.DiscardUnknownFields()
    return request


def local_utc(day, hour: int) -> datetime:
    return datetime.combine(day, time(hour), ZoneInfo(ZONE)).astimezone(UTC)


# Conversions, without a server.


def test_date_periods_convert_back_to_request():
    request = windows_request("dates")
    response = calendar_to_response(calendar_from_request(request), "dates")
    assert as_update(response) == request


def test_date_periods_become_overrides():
    calendar = calendar_from_request(windows_request("dates"))
    assert calendar.overrides[SPECIAL_DAY] == (
        Period("afternoon", time(14), time(16)),
        Period("evening", time(18), time(0)),
    )
    assert calendar.overrides[CLOSED_DAY] == ()
    assert calendar.periods_on(SPECIAL_DAY) == calendar.overrides[SPECIAL_DAY]
    assert calendar.periods_on(CLOSED_DAY) == ()


def test_date_periods_come_back_by_date():
    request = admin_pb2.UpdateCallbackWindowsRequest(
        time_zone="UTC",
        date_periods=[
            admin_pb2.DatePeriods(
                date="2027-03-01",
                periods=[
                    date_period("b", "15:00", "16:00"),
                    date_period("a", "09:00", "10:00"),
                ],
            ),
            admin_pb2.DatePeriods(date="2026-12-24"),
        ],
    )
    response = calendar_to_response(calendar_from_request(request), "*")
    assert [entry.date for entry in response.date_periods] == [
        "2026-12-24",
        "2027-03-01",
    ]
    assert [p.name for p in response.date_periods[1].periods] == ["b", "a"]
    assert list(response.date_periods[0].periods) == []


def dates_request(*entries):
    return admin_pb2.UpdateCallbackWindowsRequest(
        time_zone="UTC", date_periods=list(entries)
    )


def one_date(day, *periods):
    return admin_pb2.DatePeriods(date=day, periods=list(periods))


def many_periods(count):
    """``count`` periods of one minute each, named by their start."""
    return [
        (
            f"p{n}",
            f"{n // 60:02d}:{n % 60:02d}",
            f"{(n + 1) // 60:02d}:{(n + 1) % 60:02d}",
        )
        for n in range(count)
    ]


# (request, field named in the error, value named in the error)
INVALID_REQUESTS = {
    "too many periods on a date": (
        dates_request(
            one_date(
                "2026-12-24",
                *(date_period(*p) for p in many_periods(MAX_PERIODS_PER_DAY + 1)),
            )
        ),
        "date_periods[0].periods",
        f"{MAX_PERIODS_PER_DAY + 1} periods",
    ),
    "too many periods on a weekday": (
        admin_pb2.UpdateCallbackWindowsRequest(
            time_zone="UTC",
            periods=[
                weekday_period(3, *p) for p in many_periods(MAX_PERIODS_PER_DAY + 1)
            ],
        ),
        "periods",
        f"more than {MAX_PERIODS_PER_DAY} periods on WEEKDAY_WEDNESDAY",
    ),
    "periods over the weekly limit": (
        admin_pb2.UpdateCallbackWindowsRequest(
            time_zone="UTC",
            periods=[weekday_period(1, "m", "08:00", "09:00")] * 100_000,
        ),
        "periods",
        "100000 periods",
    ),
    "impossible date": (
        dates_request(one_date("2026-02-30")),
        "date_periods[0].date",
        "2026-02-30",
    ),
    "basic date form": (
        dates_request(one_date("20261224")),
        "date_periods[0].date",
        "20261224",
    ),
    "empty date": (dates_request(one_date("")), "date_periods[0].date", ""),
    "date twice": (
        dates_request(
            one_date("2026-12-24", date_period("a", "09:00", "10:00")),
            one_date("2026-12-24"),
        ),
        "date_periods[1].date",
        "2026-12-24",
    ),
    "end before start": (
        dates_request(one_date("2026-12-24", date_period("a", "10:00", "09:00"))),
        "date_periods[0].periods[0].end_local_time",
        "09:00",
    ),
    "end equals start": (
        dates_request(one_date("2026-12-24", date_period("a", "10:00", "10:00"))),
        "date_periods[0].periods[0].end_local_time",
        "10:00",
    ),
    "time without colon": (
        dates_request(one_date("2026-12-24", date_period("a", "0900", "10:00"))),
        "date_periods[0].periods[0].start_local_time",
        "0900",
    ),
    "blank name": (
        dates_request(one_date("2026-12-24", date_period(" ", "09:00", "10:00"))),
        "date_periods[0].periods[0].name",
        " ",
    ),
    "name twice on a date": (
        dates_request(
            one_date(
                "2026-12-24",
                date_period("a", "09:00", "10:00"),
                date_period("a", "11:00", "12:00"),
            )
        ),
        "date_periods[0].periods[1].name",
        "a",
    ),
    "overlapping periods": (
        dates_request(
            one_date(
                "2026-12-24",
                date_period("late", "11:00", "13:00"),
                date_period("early", "09:00", "11:30"),
            )
        ),
        "date_periods[0].periods",
        "early 09:00-11:30 and late 11:00-13:00",
    ),
    "period after one to midnight": (
        dates_request(
            one_date(
                "2026-12-24",
                date_period("rest", "20:00", "00:00"),
                date_period("night", "22:00", "23:00"),
            )
        ),
        "date_periods[0].periods",
        "rest 20:00-00:00 and night 22:00-23:00",
    ),
    "too many dates": (
        dates_request(
            *(
                one_date((TODAY + timedelta(days=n)).isoformat())
                for n in range(MAX_DATE_COUNT + 1)
            )
        ),
        "date_periods",
        f"{MAX_DATE_COUNT + 1} dates",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_REQUESTS))
def test_invalid_date_periods_rejected(case):
    request, field, value = INVALID_REQUESTS[case]
    with pytest.raises(ValidationError) as raised:
        calendar_from_request(request)
    assert raised.value.field == field
    assert raised.value.value == value


def test_overlapping_weekday_periods_rejected():
    request = admin_pb2.UpdateCallbackWindowsRequest(
        queue="billing",
        time_zone=ZONE,
        periods=[
            weekday_period(2, "late", "11:00", "13:00"),
            weekday_period(1, "late", "11:00", "13:00"),
            weekday_period(2, "early", "09:00", "11:30"),
        ],
    )
    with pytest.raises(ValidationError) as raised:
        calendar_from_request(request)
    assert raised.value.field == "periods"
    assert raised.value.value == "early 09:00-11:30 and late 11:00-13:00"
    assert "WEEKDAY_TUESDAY" in str(raised.value)


def test_adjacent_weekday_periods_accepted():
    request = admin_pb2.UpdateCallbackWindowsRequest(
        queue="billing",
        time_zone=ZONE,
        periods=[
            weekday_period(1, "evening", "18:00", "00:00"),
            weekday_period(1, "day", "08:00", "18:00"),
        ],
    )
    calendar = calendar_from_request(request)
    assert sorted(p.name for p in calendar.weekly[0]) == ["day", "evening"]


def test_adjacent_date_periods_accepted():
    request = dates_request(
        one_date(
            "2026-12-24",
            date_period("b", "12:00", "00:00"),
            date_period("a", "00:00", "12:00"),
        )
    )
    calendar = calendar_from_request(request)
    assert [p.name for p in calendar.periods_on(date(2026, 12, 24))] == [
        "b",
        "a",
    ]


def test_max_date_count_accepted():
    request = dates_request(
        *(
            one_date((TODAY + timedelta(days=n)).isoformat())
            for n in range(MAX_DATE_COUNT)
        )
    )
    assert len(calendar_from_request(request).overrides) == MAX_DATE_COUNT


# A real server.


@pytest.fixture(scope="module")
def served():
    served = RestartableServer(
        admin=admin_pb2_grpc.AdminServiceStub,
        callbacks=callback_pb2_grpc.CallbackServiceStub,
    )
    try:
        yield served
    finally:
        served.close()


def get_windows(served, queue):
    return served.admin.GetCallbackWindows(
        admin_pb2.GetCallbackWindowsRequest(queue=queue), timeout=CALL_TIMEOUT_S
    )


def create_callback(served, queue, **fields):
    callback = callback_pb2.Callback(
        customer_id="customer-" + uuid.uuid4().hex[:8],
        phone_number="+14155550100",
        queue=queue,
        **fields,
    )
    request = callback_pb2.CreateCallbackRequest(
        callback=callback, request_id=str(uuid.uuid4())
    )
    response = served.callbacks.CreateCallback(request, timeout=CALL_TIMEOUT_S)
    return response.callback


def create_in_window(served, queue, day, period):
    return create_callback(
        served,
        queue,
        mode=callback_pb2.CALLBACK_MODE_WINDOW,
        window_date=day.isoformat(),
        window_period=period,
    )


def promised_window(callback) -> tuple[datetime, datetime]:
    window = callback.promised_window
    return (
        window.start_time.ToDatetime(tzinfo=UTC),
        window.end_time.ToDatetime(tzinfo=UTC),
    )


def field_violations(error) -> list[tuple[str, str]]:
    violations = []
    for detail in decode_status(error).details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations += [
                (v.field, v.description) for v in bad_request.field_violations
            ]
    return violations


@pytest.mark.slow
def test_serve_date_periods_round_trip(served):
    request = windows_request("dates")
    response = served.admin.UpdateCallbackWindows(request, timeout=CALL_TIMEOUT_S)
    stored = get_windows(served, "dates")
    assert response.period_count == 7
    assert response.date_count == 2
    assert as_update(stored) == request
    assert not stored.default_calendar


@pytest.mark.slow
def test_serve_window_on_date_uses_its_period(served):
    callback = create_in_window(served, "dates", SPECIAL_DAY, "afternoon")
    assert callback.window_date == SPECIAL_DAY.isoformat()
    assert promised_window(callback) == (
        local_utc(SPECIAL_DAY, 14),
        local_utc(SPECIAL_DAY, 16),
    )


@pytest.mark.slow
def test_serve_weekday_period_closed_on_date(served):
    with pytest.raises(grpc.RpcError) as raised:
        create_in_window(served, "dates", SPECIAL_DAY, "morning")
    violations = field_violations(raised.value)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations[0][0] == "callback.window_period"
    assert "open periods: afternoon, evening" in violations[0][1]


@pytest.mark.slow
def test_serve_closed_date_rejects_window(served):
    with pytest.raises(grpc.RpcError) as raised:
        create_in_window(served, "dates", CLOSED_DAY, "morning")
    violations = field_violations(raised.value)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations[0][0] == "callback.window_period"
    assert "open periods: none" in violations[0][1]


@pytest.mark.slow
def test_serve_asap_skips_closed_today(served):
    # Today is closed and tomorrow's morning is replaced by its afternoon,
    # so the first open instant is tomorrow at 14:00.
    request = windows_request("dates-asap")
    request.date_periods[1].date = TODAY.isoformat()
    served.admin.UpdateCallbackWindows(request, timeout=CALL_TIMEOUT_S)
    callback = create_callback(
        served, "dates-asap", mode=callback_pb2.CALLBACK_MODE_ASAP
    )
    assert promised_window(callback)[0] == local_utc(SPECIAL_DAY, 14)


@pytest.mark.slow
def test_serve_invalid_date_names_value(served):
    request = windows_request("dates-invalid")
    request.date_periods[1].date = "2026-13-01"
    with pytest.raises(grpc.RpcError) as raised:
        served.admin.UpdateCallbackWindows(request, timeout=CALL_TIMEOUT_S)
    violations = field_violations(raised.value)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violations[0][0] == "date_periods[1].date"
    assert "'2026-13-01'" in violations[0][1]
    assert "YYYY-MM-DD" in violations[0][1]
    assert get_windows(served, "dates-invalid").default_calendar


@pytest.mark.slow
def test_serve_missing_weekday_names_values(served):
    request = windows_request("dates-invalid")
    request.periods[0].weekday = admin_pb2.WEEKDAY_UNSPECIFIED
    with pytest.raises(grpc.RpcError) as raised:
        served.admin.UpdateCallbackWindows(request, timeout=CALL_TIMEOUT_S)
    violations = field_violations(raised.value)
    assert violations[0][0] == "periods[0].weekday"
    assert "WEEKDAY_MONDAY (1) to WEEKDAY_SUNDAY (7)" in violations[0][1]


def run_client(served, *args, stdin=None):
    return CliRunner().invoke(
        cli, ["client", "--address", served.process.address, *args], input=stdin
    )


@pytest.mark.slow
def test_cli_update_then_get_date_periods(served, tmp_path):
    request = windows_request("dates-cli")
    path = tmp_path / "windows.json"
    path.write_text(
        json_format.MessageToJson(request, preserving_proto_field_name=True)
    )
    updated = run_client(served, "admin", "update", "callback-windows", str(path))
    got = run_client(served, "admin", "get", "callback-windows", "--queue", "dates-cli")
    assert updated.exit_code == 0, updated.output
    assert json.loads(updated.output) == {"period_count": 7, "date_count": 2}
    assert got.exit_code == 0, got.output
    printed = json.loads(got.output)
    assert printed["date_periods"][1] == {"date": CLOSED_DAY.isoformat(), "periods": []}
    parsed = json_format.ParseDict(
        printed, admin_pb2.GetCallbackWindowsResponse(), ignore_unknown_fields=False
    )
    assert as_update(parsed) == request


@pytest.mark.slow
def test_cli_get_output_sent_back(served):
    got = run_client(served, "admin", "get", "callback-windows", "--queue", "dates-cli")
    printed = json.loads(got.output)
    printed["date_periods"][1]["periods"] = [
        {"name": "noon", "start_local_time": "12:00", "end_local_time": "13:00"}
    ]
    updated = run_client(
        served, "admin", "update", "callback-windows", "-", stdin=json.dumps(printed)
    )
    stored = get_windows(served, "dates-cli")
    assert updated.exit_code == 0, updated.output
    assert [p.name for p in stored.date_periods[1].periods] == ["noon"]


@pytest.mark.slow
def test_cli_update_invalid_date_names_value(served):
    request = windows_request("dates-cli")
    request.date_periods[0].date = "24.12.2026"
    updated = run_client(
        served,
        "admin",
        "update",
        "callback-windows",
        "-",
        stdin=json_format.MessageToJson(request),
    )
    assert updated.exit_code == 1
    assert "INVALID_ARGUMENT" in updated.output
    assert "invalid date_periods[0].date '24.12.2026'" in updated.output


def test_cli_update_unknown_field_rejected(tmp_path):
    # Port 1 on loopback: the file is rejected before a call is made.
    path = tmp_path / "windows.json"
    path.write_text(json.dumps({"time_zone": "UTC", "date_period": []}))
    result = CliRunner().invoke(
        cli,
        ["client", "--address", "127.0.0.1:1", "admin", "update"]
        + ["callback-windows", str(path)],
    )
    assert result.exit_code == 2
    assert "date_period" in result.output
    assert "UpdateCallbackWindowsRequest" in result.output


def update_offline(path):
    """Run admin update callback-windows on ``path`` against a closed port."""
    # Port 1 on loopback: these files are rejected before a call is made.
    return CliRunner().invoke(
        cli,
        ["client", "--address", "127.0.0.1:1", "admin", "update"]
        + ["callback-windows", str(path)],
    )


def test_cli_update_not_utf8_named(tmp_path):
    path = tmp_path / "windows.json"
    path.write_bytes(b'{"queue": "b\xe9"}')
    result = update_offline(path)
    assert result.exit_code == 2
    assert "windows.json is not UTF-8 text" in result.output
    assert "save it as UTF-8" in result.output


def test_cli_update_byte_order_mark_read(tmp_path):
    path = tmp_path / "windows.json"
    path.write_bytes(b'\xef\xbb\xbf{"time_zone": "UTC", "date_period": []}')
    result = update_offline(path)
    assert result.exit_code == 2
    assert 'no field named "date_period"' in result.output


def test_cli_update_weekday_name_hint(tmp_path):
    path = tmp_path / "windows.json"
    period = {"weekday": "MONDAY", "name": "day"}
    path.write_text(json.dumps({"time_zone": "UTC", "periods": [period]}))
    result = update_offline(path)
    assert result.exit_code == 2
    assert "Invalid enum value MONDAY" in result.output
    assert "such as weekday WEEKDAY_MONDAY" in result.output


# Last: the restart, after every update above.


@pytest.mark.slow
def test_serve_date_periods_survive_restart(served):
    status = served.restart()
    stored = get_windows(served, "dates")
    callback = create_in_window(served, "dates", SPECIAL_DAY, "evening")
    assert status == 0
    assert as_update(stored) == windows_request("dates")
    assert promised_window(callback) == (
        local_utc(SPECIAL_DAY, 18),
        local_utc(SPECIAL_DAY + timedelta(days=1), 0),
    )

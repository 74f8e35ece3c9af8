"""Reader of the Anonymous Bank call log."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from callsure.engine.calllog import COLUMNS, read_call_log
from callsure.engine.exceptions import ValidationError


@pytest.fixture(scope="module")
def bank(bank_log):
    return read_call_log(bank_log)


def test_reads_every_row_of_bank_log(bank):
    assert bank.rows_read == 25890
    assert len(bank.records) + sum(bank.dropped.values()) == bank.rows_read


def test_drops_phantom_and_broken_rows(bank):
    assert bank.dropped["PHANTOM"] == 221
    assert bank.dropped["negative vru_time"] > 0
    assert bank.dropped["served without service times"] > 0
    assert all(record.outcome in ("AGENT", "HANG") for record in bank.records)


def test_times_are_utc_from_israel_local(bank):
    first = bank.records[0]
    # 1999-02-01 00:11:28 in Israel (UTC+2 in winter).
    assert first.vru_entry == datetime(1999, 1, 31, 22, 11, 28, tzinfo=UTC)
    assert first.vru_entry.tzinfo is UTC


def test_records_are_consistent(bank):
    for record in bank.records:
        assert record.vru_entry <= record.vru_exit
        if record.queued:
            assert record.wait_s >= 0
        if record.served:
            assert record.service_s >= 0
            assert record.ser_start is not None


def test_summary_names_drop_reasons(bank):
    assert "221 PHANTOM" in bank.summary()


def write_log(tmp_path, *rows):
    path = tmp_path / "calls.tsv"
    path.write_text("\t".join(COLUMNS) + "\r\n" + "".join(r + "\r\n" for r in rows))
    return path


SERVED = (
    "AA0101\t34536\t0\t0\tPS\t990201\t23:58:47\t23:58:56\t9\t23:58:56\t23:59:30"
    "\t34\tAGENT\t23:59:30\t0:02:41\t191\tDORIT"
)


def test_service_past_midnight_ends_next_day(tmp_path):
    log = read_call_log(write_log(tmp_path, SERVED))
    record = log.records[0]
    assert record.service_s == 191
    assert record.ser_exit == datetime(1999, 2, 1, 22, 2, 41, tzinfo=UTC)
    assert record.server == "DORIT"


def test_wrong_header_names_line_one(tmp_path):
    path = tmp_path / "calls.tsv"
    path.write_text("a\tb\tc\n")
    with pytest.raises(ValidationError, match="line 1"):
        read_call_log(path)


def test_short_row_names_its_line(tmp_path):
    path = write_log(tmp_path, SERVED, "AA0101\t34537\t0")
    with pytest.raises(ValidationError, match="line 3.*17 tab-separated"):
        read_call_log(path)


def test_bad_time_names_its_line(tmp_path):
    path = write_log(tmp_path, SERVED.replace("23:59:30\t34", "23:5x:30\t34"))
    with pytest.raises(ValidationError, match="line 2.*H:MM:SS"):
        read_call_log(path)


def test_binary_file_is_not_a_text_log(tmp_path):
    path = tmp_path / "calls.tsv"
    path.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(ValidationError, match="calls.tsv near line 1.*not a tab"):
        read_call_log(path)


def test_undecodable_row_rejected(tmp_path):
    path = write_log(tmp_path, SERVED)
    path.write_bytes(path.read_bytes() + b"\xff\xfe broken\n")
    with pytest.raises(ValidationError, match="not a tab-separated text log"):
        read_call_log(path)


def test_unknown_zone_is_named(tmp_path):
    with pytest.raises(ValidationError, match="zone 'Mars/Base'.*IANA"):
        read_call_log(write_log(tmp_path, SERVED), zone="Mars/Base")

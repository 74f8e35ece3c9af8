"""Reader of the Anonymous Bank call log (Technion SEE lab, tab-separated).

One line per call, 17 columns: ``vru+line call_id customer_id priority
type date vru_entry vru_exit vru_time q_start q_exit q_time outcome
ser_start ser_exit ser_time server``. Dates are ``YYMMDD`` and times
``H:MM:SS`` in the center's local time (Asia/Jerusalem); ``0:00:00``
marks a step the call never reached. The reader converts every time to a
timezone-aware UTC datetime, moves times past midnight to the next day,
and drops rows that cannot be used, counting each reason:

- ``PHANTOM``: the log's own mark for a call with no trace;
- ``negative vru_time``: the voice response unit exit precedes its entry;
- ``served without service times``: outcome AGENT but no ser_start;
- ``negative duration``: a queue or service step ends before it starts.

A file of the wrong shape (unknown header, wrong column count, a value
that does not parse) raises ``ValidationError`` naming the line.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callsure.engine.exceptions import ValidationError

logger = logging.getLogger(__name__)

COLUMNS = (
    "vru+line",
    "call_id",
    "customer_id",
    "priority",
    "type",
    "date",
    "vru_entry",
    "vru_exit",
    "vru_time",
    "q_start",
    "q_exit",
    "q_time",
    "outcome",
    "ser_start",
    "ser_exit",
    "ser_time",
    "server",
)
OUTCOMES = ("AGENT", "HANG", "PHANTOM")
NO_SERVER = "NO_SERVER"
LOCAL_ZONE = "Asia/Jerusalem"
# A step logged earlier in the day than the call's start by more than this
# happened after midnight; shorter gaps are clock skew between systems.
MIDNIGHT_GAP_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One call of the log, with times in UTC.

    Attributes
    ----------
    line : int
        Line number in the file (the header is line 1).
    call_id, customer_id : int
        Call number, and customer number (0 when not identified).
    priority : int
        0 and 1 regular, 2 high; a higher number is served first.
    type : str
        Service type: PS, PE, IN, NE, NW or TT.
    vru_entry, vru_exit : datetime
        Entry to and exit from the voice response unit.
    q_start, q_exit : datetime or None
        Entry to and exit from the agent queue; None when never queued.
    outcome : str
        ``AGENT`` (served) or ``HANG`` (abandoned).
    ser_start, ser_exit : datetime or None
        Service by an agent; None when not served.
    server : str or None
        Agent name; None for ``NO_SERVER``.
    """

    line: int
    call_id: int
    customer_id: int
    priority: int
    type: str
    vru_entry: datetime
    vru_exit: datetime
    q_start: datetime | None
    q_exit: datetime | None
    outcome: str
    ser_start: datetime | None
    ser_exit: datetime | None
    server: str | None

    @property
    def queued(self) -> bool:
        """Whether the call waited in the agent queue."""
        return self.q_start is not None

    @property
    def served(self) -> bool:
        """Whether an agent answered the call."""
        return self.outcome == "AGENT"

    @property
    def wait_s(self) -> float | None:
        """Seconds in the agent queue, or None when never queued."""
        if self.q_start is None or self.q_exit is None:
            return None
        return (self.q_exit - self.q_start).total_seconds()

    @property
    def service_s(self) -> float | None:
        """Seconds of service, or None when not served."""
        if self.ser_start is None or self.ser_exit is None:
            return None
        return (self.ser_exit - self.ser_start).total_seconds()


@dataclass
class CallLog:
    """The calls of a log file and what was dropped while reading it.

    Attributes
    ----------
    path : Path
        The file read.
    records : list[CallRecord]
        Usable calls, ordered by ``vru_entry``.
    rows_read : int
        Data lines in the file.
    dropped : Counter
        Dropped rows by reason.
    """

    path: Path
    records: list[CallRecord] = field(default_factory=list)
    rows_read: int = 0
    dropped: Counter = field(default_factory=Counter)

    def summary(self) -> str:
        """Describe rows read, kept and dropped, in one line."""
        reasons = ", ".join(f"{n} {why}" for why, n in sorted(self.dropped.items()))
        return (
            f"{self.path.name}: {self.rows_read} rows, {len(self.records)} kept, "
            f"{sum(self.dropped.values())} dropped ({reasons or 'none'})"
        )


class _Skip(Exception):
    """A row to drop, with the reason counted in ``CallLog.dropped``."""


def _zone_info(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(
            "zone", zone, "use an IANA time zone name such as Asia/Jerusalem"
        ) from None


def _shape_error(path: Path, line: int, value: object, fix: str) -> ValidationError:
    return ValidationError(f"{path.name} line {line}", value, fix)


class _RowParser:
    def __init__(self, path: Path, zone: ZoneInfo):
        self.path = path
        self.zone = zone

    def number(self, line: int, name: str, text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise _shape_error(
                self.path, line, text, f"{name} must be a whole number"
            ) from None

    def customer(self, line: int, text: str) -> int:
        # Some identifiers went through a spreadsheet and come as 6.02701E+11;
        # their last digits are lost, so they may merge distinct customers.
        if "E+" in text.upper():
            try:
                return int(float(text))
            except ValueError:
                pass
        return self.number(line, "customer_id", text)

    def clock(self, line: int, name: str, text: str) -> int | None:
        """Return seconds after local midnight, or None for 0:00:00."""
        parts = text.split(":")
        if len(parts) != 3 or not all(p.isdigit() for p in parts):
            raise _shape_error(self.path, line, text, f"{name} must be H:MM:SS")
        hours, minutes, seconds = (int(p) for p in parts)
        if hours > 23 or minutes > 59 or seconds > 59:
            raise _shape_error(self.path, line, text, f"{name} must be H:MM:SS")
        total = hours * 3600 + minutes * 60 + seconds
        return None if total == 0 else total

    def day(self, line: int, text: str) -> date:
        if len(text) != 6 or not text.isdigit():
            raise _shape_error(self.path, line, text, "date must be YYMMDD")
        year = int(text[:2])
        year += 1900 if year >= 50 else 2000
        try:
            return date(year, int(text[2:4]), int(text[4:]))
        except ValueError:
            raise _shape_error(self.path, line, text, "date must be YYMMDD") from None

    def instant(self, day: date, seconds: int, start: int) -> datetime:
        """Return the UTC time of a local clock reading on ``day``."""
        if seconds < start - MIDNIGHT_GAP_S:
            seconds += 86400
        local = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        # Add the offset in local wall time, then convert: the zone rules
        # decide the UTC offset of that wall time, daylight saving included.
        wall = local.replace(tzinfo=None) + timedelta(seconds=seconds)
        return wall.replace(tzinfo=self.zone).astimezone(UTC)

    def parse(self, line: int, cells: list[str]) -> CallRecord:
        if len(cells) != len(COLUMNS):
            raise _shape_error(
                self.path,
                line,
                f"{len(cells)} columns",
                f"expected {len(COLUMNS)} tab-separated columns",
            )
        outcome = cells[12]
        if outcome not in OUTCOMES:
            raise _shape_error(
                self.path, line, outcome, f"outcome must be one of {OUTCOMES}"
            )
        day = self.day(line, cells[5])
        times = {
            name: self.clock(line, name, cells[index])
            for index, name in (
                (6, "vru_entry"),
                (7, "vru_exit"),
                (9, "q_start"),
                (10, "q_exit"),
                (13, "ser_start"),
                (14, "ser_exit"),
            )
        }
        vru_time = self.number(line, "vru_time", cells[8])
        record_fields = {
            "call_id": self.number(line, "call_id", cells[1]),
            "customer_id": self.customer(line, cells[2]),
            "priority": self.number(line, "priority", cells[3]),
        }
        if outcome == "PHANTOM":
            raise _Skip("PHANTOM")
        if vru_time < 0:
            raise _Skip("negative vru_time")
        if times["vru_entry"] is None:
            raise _Skip("missing vru_entry")
        if outcome == "AGENT" and (
            times["ser_start"] is None or times["ser_exit"] is None
        ):
            raise _Skip("served without service times")
        if (times["q_start"] is None) != (times["q_exit"] is None):
            raise _Skip("missing queue times")

        start = times["vru_entry"]
        stamps = {
            name: None if value is None else self.instant(day, value, start)
            for name, value in times.items()
        }
        if stamps["vru_exit"] is None:
            stamps["vru_exit"] = stamps["vru_entry"]
        for begin, end in (("q_start", "q_exit"), ("ser_start", "ser_exit")):
            if stamps[begin] is not None and stamps[end] < stamps[begin]:
                raise _Skip("negative duration")
        server = cells[16].strip()
        return CallRecord(
            line=line,
            type=cells[4],
            outcome=outcome,
            server=None if server == NO_SERVER else server,
            **record_fields,
            **stamps,
        )


def read_call_log(path: str | Path, zone: str = LOCAL_ZONE) -> CallLog:
    """Read a call log file, dropping unusable rows and counting why.

    Parameters
    ----------
    path : str or Path
        Tab-separated file with the header of ``COLUMNS``.
    zone : str
        IANA time zone of the logged local times.

    Returns
    -------
    CallLog
        Records ordered by ``vru_entry``, with drop counts by reason.

    Raises
    ------
    ValidationError
        When the header, a column count or a value does not fit the format,
        or when the file is not UTF-8 text. The message names the line.
        Also when ``zone`` is not a known IANA time zone.
    """
    path = Path(path)
    parser = _RowParser(path, _zone_info(zone))
    log = CallLog(path=path)
    line = 0  # the last line read whole
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            header = handle.readline().rstrip("\r\n").split("\t")
            if tuple(header) != COLUMNS:
                raise _shape_error(
                    path,
                    1,
                    "\t".join(header)[:80],
                    "expected the header " + " ".join(COLUMNS),
                )
            line = 1
            for line, text in enumerate(handle, start=2):
                text = text.rstrip("\r\n")
                if not text:
                    continue
                log.rows_read += 1
                try:
                    log.records.append(parser.parse(line, text.split("\t")))
                except _Skip as skip:
                    log.dropped[str(skip)] += 1
    except UnicodeDecodeError as error:
        # Text is decoded a block at a time, so the failing line is the
        # one after the last line read, or a few lines later.
        raise ValidationError(
            f"{path} near line {line + 1}",
            error.object[error.start : error.start + 8],
            "not a tab-separated text log: pass the call log as UTF-8 .tsv",
        ) from None
    log.records.sort(key=lambda record: (record.vru_entry, record.line))
    logger.info("%s", log.summary())
    return log

"""The demo's input: a window of the real call log, compressed in time.

``DemoWorkload.build`` reads the Anonymous Bank log, keeps the calls that
reached the agent queue in the chosen window, and turns each into a
``DemoCall``: arrival and handling time divided by the speed, the agent
group its service type maps to, and the caller's patience from the log.
It also numbers the customers (the log has customer ids, not phone
numbers), picks the VIP customers, and assigns every customer what
happens when a callback rings them: a person, a voicemail, a network
announcement, no answer or a busy line, drawn with a seed.

Groups: the log's service types PS (regular banking), PE (regular, in
English), NW (prospective customers) and TT (technical support) go to
``retail``; IN (internet banking) and NE (stock exchange) go to
``premium``, and so does every call of priority 2 (the bank's high
priority customers), because the log has few IN and NE calls.
"""

from __future__ import annotations

import csv
import functools
import gzip
import random
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from callsure.engine.calllog import LOCAL_ZONE, read_call_log
from callsure.engine.exceptions import ValidationError
from callsure.engine.prediction import StaticForecast

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
DEFAULT_LOG = DATA_DIR / "calls-1999-02-01-to-21.tsv.gz"
DEFAULT_RECORDINGS = DATA_DIR / "recordings"
# A surge of the shipped log. From 13:00 to 13:20 on 3 February 1999 calls
# piled up in the voice response unit (494 in the hour, the log's busiest
# hour). Then 113 reached the agent queue between 13:20 and 13:35, and 92
# of the hour's 137 queued callers hung up waiting.
DEFAULT_START = "1999-02-03T13:00"
QUICK_START = "1999-02-03T13:20"

RETAIL = "retail"
PREMIUM = "premium"
GROUP_OF_TYPE = {
    "PS": RETAIL,
    "PE": RETAIL,
    "NW": RETAIL,
    "TT": RETAIL,
    "IN": PREMIUM,
    "NE": PREMIUM,
}
HIGH_PRIORITY = 2
VIP_AGENT = "vip-1"
# Fictitious North American numbers (555 exchange) for the log's customers.
NUMBER_PREFIX = "+1555"

# The party that picks up a first callback attempt, with its share. The
# shares are an estimate for a list of customers who asked to be called
# (about two in three reached in person), not measured data.
ANSWER_MIX = (
    ("HUMAN", 0.62),
    ("MACHINE", 0.14),
    ("NO_ANSWER", 0.08),
    ("BUSY", 0.07),
    ("SIT", 0.04),
    ("FAX", 0.02),
    ("SILENCE", 0.03),
)
# Probability that a customer whose first callback failed answers in
# person on the next attempt.
ANSWER_ON_REDIAL = 0.6
PERSON_SETUP_S = 6.0


@dataclass(frozen=True)
class DemoCall:
    """One call of the log, in the demo's compressed time.

    Attributes
    ----------
    line : int
        Line of the log file, for tracing a call back to its source.
    customer_id, phone_number : str
        Customer id (``ab-<log id>``, or ``ab-call-<call id>`` for an
        unidentified caller) and the number the demo assigned.
    group : str
        Agent group: ``retail`` or ``premium``.
    arrival_s : float
        Seconds after the demo's start at which the caller enters the queue.
    handle_s : float
        Talk time with an agent, compressed (the log's service time, or the
        window's mean for callers the log never served).
    patience_s : float or None
        Compressed seconds the caller waits before hanging up; ``None`` for
        a caller the log shows served (who waited as long as needed).
    log_wait_s : float
        The wait in the log, uncompressed.
    repeat : bool
        The customer called before in the window.
    """

    line: int
    customer_id: str
    phone_number: str
    group: str
    arrival_s: float
    handle_s: float
    patience_s: float | None
    log_wait_s: float
    repeat: bool = False


@dataclass
class DemoWorkload:
    """Calls, agents and customer behaviours of one demo run."""

    calls: list[DemoCall]
    speed: float
    start_local: datetime
    duration_s: float
    agents: dict[str, list[str]]
    vip_customers: list[str]
    answers: dict[str, list[dict]]
    truth: dict[str, str] = field(default_factory=dict)
    forecasts: dict[str, StaticForecast] = field(default_factory=dict)

    @property
    def numbers(self) -> dict[str, DemoCall]:
        """The first call of each phone number."""
        first: dict[str, DemoCall] = {}
        for call in self.calls:
            first.setdefault(call.phone_number, call)
        return first

    @classmethod
    def build(
        cls,
        log_path: Path,
        recordings: Path,
        start: str,
        minutes: float,
        speed: float,
        seed: int,
        agents_per_group: dict[str, int],
    ) -> DemoWorkload:
        """Read the log and build the workload of the window.

        Raises
        ------
        ValidationError
            For recordings that ``read_labels`` rejects (checked first), a
            start that does not parse, or a window without queued calls.
        """
        # The recordings are checked first, because reading the log takes
        # seconds.
        by_label = read_labels(recordings)
        zone = ZoneInfo(LOCAL_ZONE)
        try:
            start_local = datetime.fromisoformat(start).replace(tzinfo=zone)
        except ValueError:
            raise ValidationError(
                "start", start, "give a local time such as 1999-02-03T13:00"
            ) from None
        end_local = start_local + timedelta(minutes=minutes)
        records = _read_log(log_path)
        window = sorted(
            (r for r in records if r.queued and start_local <= r.q_start < end_local),
            key=lambda r: r.q_start,
        )
        if not window:
            raise ValidationError(
                "start",
                start,
                f"pick a window with queued calls; {log_path.name} has none "
                f"from {start_local:%Y-%m-%d %H:%M} for {minutes:g} minutes",
            )
        # The first caller arrives a second after the demo starts, so a
        # window that opens quietly does not leave the screen idle.
        offset_s = (window[0].q_start - start_local).total_seconds() - speed
        served = [r.service_s for r in window if r.served and r.service_s]
        mean_service_s = sum(served) / len(served) if served else 180.0

        numbers: dict[str, str] = {}
        calls: list[DemoCall] = []
        seen: Counter = Counter()
        for record in window:
            customer_id = (
                f"ab-{record.customer_id}"
                if record.customer_id
                else f"ab-call-{record.call_id}"
            )
            number = numbers.setdefault(
                customer_id, f"{NUMBER_PREFIX}{len(numbers) + 1:07d}"
            )
            group = GROUP_OF_TYPE.get(record.type, RETAIL)
            if record.priority >= HIGH_PRIORITY:
                group = PREMIUM
            service_s = record.service_s if record.served else mean_service_s
            patience_s = None if record.served else record.wait_s / speed
            calls.append(
                DemoCall(
                    line=record.line,
                    customer_id=customer_id,
                    phone_number=number,
                    group=group,
                    arrival_s=(
                        (record.q_start - start_local).total_seconds() - offset_s
                    )
                    / speed,
                    handle_s=max(1.0, service_s / speed),
                    patience_s=patience_s,
                    log_wait_s=record.wait_s or 0.0,
                    repeat=seen[customer_id] > 0,
                )
            )
            seen[customer_id] += 1

        vip_customers = sorted(
            {
                c.customer_id
                for c, r in zip(calls, window, strict=True)
                if r.priority >= HIGH_PRIORITY and r.customer_id
            }
        )
        agents = {
            RETAIL: [f"retail-{i}" for i in range(1, agents_per_group[RETAIL] + 1)],
            PREMIUM: [VIP_AGENT]
            + [f"premium-{i}" for i in range(1, agents_per_group[PREMIUM])],
        }
        answers, truth = assign_answers(
            sorted({c.phone_number for c in calls}), calls, by_label, seed
        )
        return cls(
            calls=calls,
            speed=speed,
            start_local=start_local,
            duration_s=minutes * 60 / speed,
            agents=agents,
            vip_customers=vip_customers,
            answers=answers,
            truth=truth,
            forecasts=usual_forecasts(records, start_local, minutes, speed, agents),
        )


def usual_forecasts(
    records, start_local: datetime, minutes: float, speed: float, agents
) -> dict[str, StaticForecast]:
    """Build the forecast a planner would make for the window, compressed.

    Per group: the mean number of queued calls in the same hours of the
    log's days that had calls then, and the mean handling time. Patience
    is exponential with the maximum-likelihood mean: the queue time of
    all queued callers over the number who hung up. A surge is then a
    surprise to the engine, as it is to a contact center.
    """
    zone = start_local.tzinfo
    first = start_local.hour * 60 + start_local.minute
    counts: dict[str, Counter] = defaultdict(Counter)
    handle: dict[str, list[float]] = defaultdict(list)
    waited: dict[str, float] = defaultdict(float)
    abandons: Counter = Counter()
    for record in records:
        if not record.queued:
            continue
        local = record.q_start.astimezone(zone)
        minute = local.hour * 60 + local.minute
        if not first <= minute < first + minutes:
            continue
        group = GROUP_OF_TYPE.get(record.type, RETAIL)
        if record.priority >= HIGH_PRIORITY:
            group = PREMIUM
        counts[group][local.date()] += 1
        if record.served and record.service_s:
            handle[group].append(record.service_s)
        waited[group] += record.wait_s or 0.0
        abandons[group] += not record.served
    forecasts = {}
    for group, agent_ids in agents.items():
        days = counts[group]
        per_window = sum(days.values()) / len(days) if days else 0.0
        handles = handle[group] or [180.0]
        patience_s = waited[group] / abandons[group] if abandons[group] else 600.0
        forecasts[group] = StaticForecast(
            arrivals_per_s=per_window / (minutes * 60) * speed,
            agents_on_duty=float(len(agent_ids)),
            mean_handle_s=sum(handles) / len(handles) / speed,
            mean_patience_s=patience_s / speed,
        )
    return forecasts


def common_prior(forecasts: dict[str, StaticForecast]) -> StaticForecast:
    """Average the groups' forecasts into the one prior every queue starts from.

    The server's ``[forecast_prior]`` applies to every queue alike; the
    live feed then teaches each queue its own rates.
    """
    count = len(forecasts)
    return StaticForecast(
        arrivals_per_s=sum(f.arrivals_per_s for f in forecasts.values()) / count,
        agents_on_duty=sum(f.agents_on_duty for f in forecasts.values()) / count,
        mean_handle_s=sum(f.mean_handle_s for f in forecasts.values()) / count,
        mean_patience_s=sum(f.mean_patience_s for f in forecasts.values()) / count,
    )


def _read_log(path: Path) -> tuple:
    """Read a call log, plain or gzip-compressed."""
    if not path.exists():
        raise ValidationError("log", str(path), "give an existing call log file")
    return _read_log_cached(str(path.resolve()), path.stat().st_mtime_ns)


@functools.lru_cache(maxsize=2)
def _read_log_cached(name: str, modified_ns: int) -> tuple:
    # Keyed by modification time too, so an edited log is read again.
    path = Path(name)
    if path.suffix != ".gz":
        return tuple(read_call_log(path).records)
    # NOTE: read_call_log opens plain text only, so a .gz log is unpacked
    # to a temporary file first.
    with tempfile.TemporaryDirectory(prefix="callsure-log-") as folder:
        plain = Path(folder) / path.stem
        try:
            with gzip.open(path, "rb") as source, plain.open("wb") as target:
                shutil.copyfileobj(source, target)
        except (OSError, EOFError):
            # BadGzipFile is an OSError, and a cut-off file raises EOFError.
            raise ValidationError(
                "log", str(path), "not a readable gzip file: pass a .tsv or .tsv.gz log"
            ) from None
        return tuple(read_call_log(plain).records)


def read_labels(recordings: Path) -> dict[str, list[Path]]:
    """Read the recordings per label from ``labels.csv`` (``file``, ``label``).

    Raises
    ------
    ValidationError
        For a folder without ``labels.csv``, a ``labels.csv`` without the
        two columns or without a HUMAN recording, or a listed file that is
        missing, so that the demo stops before it starts anything.
    """
    labels_file = recordings / "labels.csv"
    if not labels_file.exists():
        raise ValidationError(
            "recordings",
            str(recordings),
            "give a folder of WAV files with a labels.csv (columns file, label)",
        )
    by_label: dict[str, list[Path]] = {}
    with labels_file.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"file", "label"} <= set(reader.fieldnames or ()):
            raise ValidationError(
                "recordings",
                str(labels_file),
                "give labels.csv a header line with the columns file and label",
            )
        for row in reader:
            path = recordings / row["file"]
            if not path.is_file():
                raise ValidationError(
                    "recordings",
                    str(recordings),
                    f"{row['file']} listed in labels.csv is missing; copy it into "
                    "the folder or remove its line from labels.csv",
                )
            by_label.setdefault(row["label"], []).append(path)
    if not by_label.get("HUMAN"):
        # A person answers most callbacks, and every label without a
        # recording of its own plays a HUMAN one.
        raise ValidationError(
            "recordings",
            str(labels_file),
            "list at least one recording labelled HUMAN",
        )
    return by_label


def assign_answers(
    numbers: list[str],
    calls: list[DemoCall],
    by_label: dict[str, list[Path]],
    seed: int,
) -> tuple[dict[str, list[dict]], dict[str, str]]:
    """Draw what answers each number's callbacks, attempt by attempt.

    ``by_label`` is the recordings per label (see ``read_labels``). Returns
    the phone behaviours per number (a list, one entry per attempt, the
    last repeating) and the truth label of each recording played.
    """
    truth = {str(path): label for label, paths in by_label.items() for path in paths}
    handle_of = {}
    for call in calls:
        handle_of.setdefault(call.phone_number, call.handle_s)
    generator = random.Random(seed)
    labels = [label for label, _ in ANSWER_MIX]
    weights = [share for _, share in ANSWER_MIX]
    answers: dict[str, list[dict]] = {}
    for number in numbers:
        first = generator.choices(labels, weights)[0]
        plan = [_behaviour(first, by_label, generator, handle_of[number])]
        if first != "HUMAN":
            redial = "HUMAN" if generator.random() < ANSWER_ON_REDIAL else first
            plan.append(_behaviour(redial, by_label, generator, handle_of[number]))
        answers[number] = plan
    return answers, truth


def _behaviour(label: str, by_label, generator: random.Random, handle_s: float):
    # A phone rings 1 to 4 s before a person or a voicemail picks up.
    ring_s = round(generator.uniform(1.0, 4.0), 1)
    if label == "NO_ANSWER":
        return {"action": "ring"}
    if label == "BUSY":
        return {"action": "reject", "code": 486, "delay_s": 0.5}
    files = by_label.get(label) or by_label["HUMAN"]
    play = str(generator.choice(files))
    if label == "HUMAN":
        # The person talks to the agent for the handling time, after the
        # detector's verdict (about 2.5 s after answer for these
        # recordings) and the agent leg's ringing (0.5 s).
        return {
            "action": "answer",
            "delay_s": ring_s,
            "play": play,
            "hangup_after_s": round(handle_s + PERSON_SETUP_S, 1),
        }
    # A voicemail records until the caller hangs up; dead air and fax
    # lines end after 20 s.
    return {"action": "answer", "delay_s": ring_s, "play": play, "hangup_after_s": 20}

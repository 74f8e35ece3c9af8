"""Replay of days of the call log: baseline against callbacks.

``replay_day`` runs one local day of the log twice through
``ContactCenterSimulation``: once as the baseline (no callbacks) and once
with callbacks kept by the engine's ``CallbackScheduler`` on a fresh
SQLite store. Each run gets its own predictor, warmed up on the log's
days before the replayed one and then fed online with the run's own
events. ``replay_days`` does it for several days and adds them up.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from callsure.engine.callbacks import DialMode
from callsure.engine.calllog import CallLog
from callsure.engine.policy import PromisePolicy, SchedulerPolicy
from callsure.engine.prediction.erlang_a_predictor import ErlangAPredictor
from callsure.engine.prediction.features import DayCalendar, Rates
from callsure.engine.prediction.learned import LearnedForecast
from callsure.engine.prediction.online import RunningRates
from callsure.engine.prediction.state import events_from_records
from callsure.engine.scheduler import CallbackScheduler
from callsure.engine.simulation import summary
from callsure.engine.simulation.center import QUEUE, ContactCenterSimulation, Scenario
from callsure.engine.simulation.desk import CallbackDesk
from callsure.engine.simulation.events import epoch
from callsure.engine.simulation.forecast import NetInboundForecast, TakeUp
from callsure.engine.simulation.options import ReplayOptions
from callsure.engine.simulation.workload import DayWorkload
from callsure.engine.store.sqlite import SQLiteStore
from callsure.engine.windows import CallbackCalendar, Period

logger = logging.getLogger(__name__)

LOG_ZONE = "Asia/Jerusalem"
LOG_COUNTRY = "IL"
# Rates assumed before any history: the bank's mean service time of
# February 1999 (180 s) and a patience of a few minutes. Only the first
# day of a log, with nothing to warm up on, uses them.
COLD_START_RATES = Rates(handle_s=180.0, handle_s_by_type={}, patience_s=300.0)
# Leases long enough for ring time plus the wait for an agent, so no
# lease expires while the simulated dial is still in progress.
REPLAY_LEASE_S = 900.0
PREDICTORS = ("erlang-a", "learned")


def bank_calendar(zone: str = LOG_ZONE) -> CallbackCalendar:
    """Callback windows of the bank: its opening hours in local time.

    Sunday to Thursday 07:00-24:00, Friday 07:00-14:00, Saturday from
    19:00 (Monday is 0 in ``CallbackCalendar.weekly``).
    """
    day = (Period("open", datetime.min.time().replace(hour=7), _midnight()),)
    weekly = {weekday: day for weekday in (6, 0, 1, 2, 3)}
    weekly[4] = (Period("open", _hour(7), _hour(14)),)
    weekly[5] = (Period("open", _hour(19), _midnight()),)
    return CallbackCalendar(time_zone=zone, weekly=weekly)


def _hour(hour: int):
    return datetime.min.time().replace(hour=hour)


def _midnight():
    return datetime.min.time()


@dataclass
class PredictorHandle:
    """A predictor, the function that feeds it one event, and the take-up
    counter of its net inbound forecast."""

    predictor: object
    observe: object
    kind: str
    take_up: TakeUp | None = None


def build_predictor(
    kind: str,
    history,
    options: ReplayOptions,
    model_path: str | Path | None = None,
) -> PredictorHandle:
    """Build the engine's predictor and feed it the log records of ``history``.

    ``erlang-a``: ``ErlangAPredictor`` over the online learned forecast
    (arrivals by interval and day type, agents on duty, handling and
    patience as running means). ``learned``: ``LearnedPredictor``, which
    adds the boosted wait model loaded from ``model_path``.
    """
    calendar = DayCalendar(LOG_COUNTRY, LOG_ZONE)
    erlang_options = {
        "service_level_target": options.service_level_target,
        "service_level_time_s": options.service_level_s,
        "keep_window_s": options.window_s,
    }
    if kind == "learned":
        from callsure.engine.prediction.learned import LearnedPredictor
        from callsure.engine.prediction.model import WaitModel

        if model_path is None:
            raise ValueError("the learned predictor needs a model file")
        predictor = LearnedPredictor(
            WaitModel.load(model_path), [QUEUE], calendar, **erlang_options
        )

        def observe(event):
            predictor.observe(QUEUE, event)

        # NOTE: LearnedPredictor builds its own forecast, so this path has
        # no NetInboundForecast and counts callback takers as inbound
        # demand when it computes callback capacity.

        take_up = None
    elif kind == "erlang-a":
        rates = Rates.fit(history) if history else COLD_START_RATES
        forecast = LearnedForecast(calendar, RunningRates(rates))
        take_up = TakeUp()
        predictor = ErlangAPredictor(
            {QUEUE: NetInboundForecast(forecast, take_up)}, **erlang_options
        )
        observe = forecast.observe
    else:
        raise ValueError(f"unknown predictor {kind!r}: use one of {PREDICTORS}")
    for event in events_from_records(history):
        observe(event)
    return PredictorHandle(predictor, observe, kind, take_up)


def history_before(log: CallLog, day: date, days: int, zone: str = LOG_ZONE):
    """Records of the ``days`` local dates before ``day`` (known in advance)."""
    tz = ZoneInfo(zone)
    first = day - timedelta(days=days)
    return [
        record
        for record in log.records
        if first <= record.vru_entry.astimezone(tz).date() < day
    ]


@dataclass
class DayReplay:
    """Both scenarios of one day, as summaries, with the simulations."""

    day: date
    baseline: ContactCenterSimulation
    callbacks: ContactCenterSimulation
    seconds: float
    log_counts: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        base = summary.summarize_run(self.baseline)
        with_callbacks = summary.summarize_run(self.callbacks)
        return {
            "day": self.day.isoformat(),
            "weekday": self.day.strftime("%A"),
            "log": self.log_counts,
            "baseline": base,
            "callbacks": with_callbacks,
            "duty_s": {
                "baseline": sum(a.duty_s for a in self.baseline.agents.values()),
                "callbacks": sum(a.duty_s for a in self.callbacks.agents.values()),
            },
            "targets": summary.targets(base, with_callbacks),
            "run_seconds": self.seconds,
        }


def replay_day(
    log: CallLog,
    day: date,
    options: ReplayOptions | None = None,
    *,
    store_dir: str | Path | None = None,
    predictor: str = "erlang-a",
    model_path: str | Path | None = None,
) -> DayReplay:
    """Replay local date ``day`` of ``log`` as baseline and with callbacks.

    Parameters
    ----------
    store_dir : str or Path or None
        Folder of the callback store's SQLite file; a temporary folder
        (in /dev/shm when it exists) by default.
    """
    options = options or ReplayOptions()
    started = time.perf_counter()
    workload = DayWorkload.from_log(log, day, seed=options.seed, zone=LOG_ZONE)
    history = history_before(log, day, options.warmup_days)

    handle = build_predictor(predictor, history, options, model_path)
    baseline = ContactCenterSimulation(
        workload,
        Scenario.BASELINE,
        predictor=handle.predictor,
        observe=handle.observe,
        options=options,
    ).run()

    handle = build_predictor(predictor, history, options, model_path)
    with _store_folder(store_dir) as folder:
        store = SQLiteStore(Path(folder) / f"callbacks-{day.isoformat()}.db")
        try:
            with_callbacks = _run_with_callbacks(workload, handle, options, store)
        finally:
            store.close()
    seconds = time.perf_counter() - started
    logger.info("replay %s: both scenarios in %.1f s", day.isoformat(), seconds)
    return DayReplay(day, baseline, with_callbacks, seconds, _log_counts(workload))


def _run_with_callbacks(workload, handle, options, store) -> ContactCenterSimulation:
    from callsure.engine.clock import VirtualClock

    first = min(c.arrival for c in workload.calls)
    start = min([first, *(s.start for s in workload.shifts)])
    clock = VirtualClock(start)
    policy = SchedulerPolicy(
        promise=PromisePolicy(
            predicted_quantile=options.promise_quantile,
            lease_s=REPLAY_LEASE_S,
            booking_horizon_s=options.booking_horizon_s,
            dial_mode=(
                DialMode.AGENT_FIRST if options.agent_first else DialMode.CUSTOMER_FIRST
            ),
        )
    )
    scheduler = CallbackScheduler(store, handle.predictor, clock, policy)
    scheduler.set_calendar("*", bank_calendar())
    desk = CallbackDesk(scheduler, options, QUEUE, take_up=handle.take_up)
    return ContactCenterSimulation(
        workload,
        Scenario.CALLBACKS,
        predictor=handle.predictor,
        observe=handle.observe,
        options=options,
        desk=desk,
        clock=clock,
    ).run()


def _store_folder(store_dir):
    if store_dir is not None:
        Path(store_dir).mkdir(parents=True, exist_ok=True)
        return _Existing(store_dir)
    # tmpfs: the store syncs every commit (synchronous=FULL), which costs a
    # disk flush per promise on a real disk and nothing in memory.
    shm = Path("/dev/shm")
    return tempfile.TemporaryDirectory(
        prefix="callsure-replay-", dir=shm if shm.is_dir() else None
    )


class _Existing:
    def __init__(self, path):
        self.path = str(path)

    def __enter__(self):
        return self.path

    def __exit__(self, *exc):
        return False


def _log_counts(workload: DayWorkload) -> dict:
    calls = workload.calls
    return {
        "requests": len(calls),
        "abandoned": sum(1 for c in calls if c.log_outcome == "HANG"),
        "redials": sum(1 for c in calls if c.redial_of is not None),
        "vru_only": workload.vru_only,
        "agents": len({s.agent for s in workload.shifts}),
        "shifts": len(workload.shifts),
        "first_arrival": epoch(min(c.arrival for c in calls)),
    }


def log_days(log: CallLog, zone: str = LOG_ZONE) -> list[date]:
    """Local dates present in the log, in order."""
    tz = ZoneInfo(zone)
    return sorted({record.vru_entry.astimezone(tz).date() for record in log.records})


def replay_days(
    log: CallLog,
    days: list[date],
    options: ReplayOptions | None = None,
    **keywords,
) -> tuple[list[DayReplay], dict]:
    """Replay ``days`` one after another; return the replays and the totals."""
    replays = [replay_day(log, day, options, **keywords) for day in days]
    summaries = [replay.as_dict() for replay in replays]
    totals = {
        "baseline": summary.total(summaries, "baseline"),
        "callbacks": summary.total(summaries, "callbacks"),
    }
    totals["targets"] = summary.targets(totals["baseline"], totals["callbacks"])
    return replays, {"days": summaries, "total": totals}

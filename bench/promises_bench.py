"""Benchmark: one million pending callback promises in the SQLite store.

Modelled system: one large queue ("billing": 12 calls/s, 180 s mean
handling, 345 s mean patience, 3000 agents). The Erlang A predictor leaves
about 4200 callbacks per 15-minute interval after inbound traffic, so one
million promises spread evenly over 72 hours (about 3500 an interval)
fit the capacity with room to spare. The store
is a real SQLite file on the local disk in WAL mode with
``synchronous=FULL``; time is virtual (``VirtualClock``), wall time is
measured with ``time.perf_counter``.

Phases, all in one process:

1. ``create()`` through the full path (validation, planning, predictor,
   durable commit), per mode, on samples: in batches of 1000 (one fsync
   per batch, as the coordinator groups requests) and one commit per
   promise.
2. Bulk load of the million pending promises: the same rows and journal
   events the scheduler writes, committed 10 000 per transaction.
3. Memory: the process's resident set and the database size on disk.
4. Dispatch: ``due()`` every virtual second for 15 virtual minutes from the
   first due time; each order is dialed and connected. Reports the wall
   time per ``due()`` call and the lateness of each release after its
   promised time (virtual).
5. Restart: the store is closed for 10 virtual minutes, reopened and
   recovered; reports ``recover()`` wall time and the lateness of the
   overdue promises released on catch-up.

Run: ``.venv/bin/python bench/promises_bench.py`` (about 3 to 5 minutes on
2 cores); ``--promises 100000`` for a quick run.
"""

from __future__ import annotations

import argparse
import platform
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from callsure.engine.callbacks import Callback, CallbackMode, CallbackRequest, Outcome
from callsure.engine.clock import VirtualClock
from callsure.engine.policy import PromisePolicy, SchedulerPolicy
from callsure.engine.prediction import ErlangAPredictor, StaticForecast
from callsure.engine.scheduler import CallbackScheduler
from callsure.engine.store import Change, SQLiteStore, journal

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
QUEUE = "billing"
SPREAD_H = 72.0
FIRST_DUE_H = 1.0
BULK_BATCH = 10_000
DISPATCH_WINDOW_S = 15 * 60
DOWNTIME_S = 10 * 60


def make_predictor() -> ErlangAPredictor:
    forecast = StaticForecast(
        arrivals_per_s=12.0, agents_on_duty=3000, mean_handle_s=180, mean_patience_s=345
    )
    return ErlangAPredictor({QUEUE: forecast}, horizon_s=4 * 86400)


def make_policy() -> SchedulerPolicy:
    return SchedulerPolicy(promise=PromisePolicy(booking_horizon_s=3 * 86400))


def rss_mib() -> tuple[float, float]:
    """Resident set and its peak (VmRSS, VmHWM) of this process in MiB."""
    values = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024
    return values["VmRSS"], values["VmHWM"]


def quantiles(values: list[float]) -> str:
    if not values:
        return "none"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return (
        f"p50 {at(0.5):.3f}, p99 {at(0.99):.3f}, max {ordered[-1]:.3f} "
        f"(n={len(ordered)})"
    )


# Phase 1: create() through the full path


def measure_create(folder: Path, count: int, batch: int, mode: CallbackMode) -> float:
    """Create ``count`` promises of ``mode``; return promises per second."""
    clock = VirtualClock(T0)
    store = SQLiteStore(folder / f"create-{mode.value}-{batch}.db")
    scheduler = CallbackScheduler(store, make_predictor(), clock, make_policy())
    rng = random.Random(1)
    requests = [_request(i, mode, rng) for i in range(count)]
    started = time.perf_counter()
    for first in range(0, count, batch):
        if batch == 1:
            scheduler.create(requests[first])
            continue
        with store.batch():
            for request in requests[first : first + batch]:
                scheduler.create(request)
    elapsed = time.perf_counter() - started
    store.close()
    return count / elapsed


def _request(i: int, mode: CallbackMode, rng: random.Random) -> CallbackRequest:
    fields = {}
    if mode is CallbackMode.AT_TIME:
        fields["requested_time"] = T0 + timedelta(hours=1 + rng.random() * 40)
    elif mode is CallbackMode.PREDICTED:
        fields["queue_position"] = rng.randrange(0, 50)
    elif mode is CallbackMode.WINDOW:
        fields["window_date"] = date(2026, 3, 3)
        fields["window_period"] = "day"
    return CallbackRequest(
        request_id=f"r{i}",
        customer_id=f"c{i}",
        queue=QUEUE,
        phone_number=f"+1415{i % 10_000_000:07d}",
        mode=mode,
        entry_time=T0 - timedelta(seconds=rng.uniform(0, 3600)),
        **fields,
    )


# Phase 2: bulk load


def bulk_load(store: SQLiteStore, count: int, rng: random.Random) -> float:
    """Write ``count`` pending promises; return the wall time in seconds."""
    started = time.perf_counter()
    for first in range(0, count, BULK_BATCH):
        change = Change()
        for i in range(first, min(count, first + BULK_BATCH)):
            callback = _pending(i, rng)
            change.callbacks.append(callback)
            change.requests.append((callback.request_id, callback.callback_id))
            change.event(
                T0,
                journal.CALLBACK_CREATED,
                callback.callback_id,
                callback=callback.to_row(),
            )
        store.commit(change)
    return time.perf_counter() - started


def _pending(i: int, rng: random.Random) -> Callback:
    promised = T0 + timedelta(hours=FIRST_DUE_H + rng.random() * SPREAD_H)
    return Callback(
        callback_id=f"cb_{i:016x}",
        request_id=f"r{i}",
        customer_id=f"c{i}",
        queue=QUEUE,
        phone_number=f"+1415{i % 10_000_000:07d}",
        mode=CallbackMode.AT_TIME,
        entry_time=T0 - timedelta(seconds=rng.uniform(0, 3600)),
        created_at=T0,
        promised_time=promised,
        window_end=None,
        not_before=promised,
        expires_at=promised + timedelta(hours=4),
        updated_at=T0,
    )


# Phases 4 and 5: dispatch


def dispatch(
    scheduler: CallbackScheduler, clock: VirtualClock, seconds: int
) -> tuple[list[float], list[float], int]:
    """Tick ``due()`` every virtual second; dial and connect every order.

    Returns the wall time of each ``due()`` call, the lateness of each
    release in seconds, and the number of releases.
    """
    call_s, lateness_s = [], []
    for _ in range(seconds):
        started = time.perf_counter()
        orders = scheduler.due()
        call_s.append(time.perf_counter() - started)
        now = clock.now()
        with scheduler.store.batch():
            for order in orders:
                lateness_s.append((now - order.promised_time).total_seconds())
                scheduler.start_dialing(order.attempt_id, "bench")
                scheduler.report_outcome(order.attempt_id, Outcome.CONNECTED)
        clock.advance(1)
    return call_s, lateness_s, len(lateness_s)


def timed(label: str, action: Callable[[], object]) -> object:
    started = time.perf_counter()
    result = action()
    print(f"{label}: {time.perf_counter() - started:.2f} s", flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--promises", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="Folder for the database files (default: a new temporary folder).",
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="callsure-bench-", dir=args.workdir))
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, ")
    print(f"python {platform.python_version()}, database folder {folder}")
    try:
        run(args, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def run(args, folder: Path) -> None:
    print("\n[1] create() through the full path, promises per second")
    for mode, count in (
        (CallbackMode.ASAP, 20_000),
        (CallbackMode.AT_TIME, 5_000),
        (CallbackMode.PREDICTED, 5_000),
        (CallbackMode.WINDOW, 5_000),
    ):
        rate = measure_create(folder, count, 1000, mode)
        print(f"  {mode.value:9s} batches of 1000: {rate:8.0f}/s (n={count})")
    rate = measure_create(folder, 500, 1, CallbackMode.ASAP)
    print(f"  asap      one commit each:  {rate:8.0f}/s (n=500)")

    print(f"\n[2] bulk load of {args.promises} pending promises")
    rss_before, _ = rss_mib()
    path = folder / "million.db"
    store = SQLiteStore(path)
    load_s = bulk_load(store, args.promises, random.Random(args.seed))
    print(f"  {load_s:.1f} s, {args.promises / load_s:.0f} promises/s")

    rss_after, peak = rss_mib()
    size_mib = sum(p.stat().st_size for p in folder.glob("million.db*")) / 2**20
    print("\n[3] memory")
    print(f"  process RSS {rss_before:.0f} -> {rss_after:.0f} MiB, peak {peak:.0f} MiB")
    print(f"  database and WAL on disk: {size_mib:.0f} MiB")

    print(f"\n[4] dispatch for {DISPATCH_WINDOW_S} virtual s from the first due time")
    clock = VirtualClock(T0 + timedelta(hours=FIRST_DUE_H))
    scheduler = CallbackScheduler(store, make_predictor(), clock, make_policy())
    call_s, lateness_s, released = dispatch(scheduler, clock, DISPATCH_WINDOW_S)
    print(f"  due() wall time s: {quantiles(call_s)}")
    print(f"  lateness after the promised time, virtual s: {quantiles(lateness_s)}")
    print(f"  released {released}, mean wall per due() {statistics.mean(call_s):.4f} s")
    store.close()

    print(f"\n[5] restart after {DOWNTIME_S} virtual s of downtime")
    clock.advance(DOWNTIME_S)
    started = time.perf_counter()
    store = SQLiteStore(path)
    scheduler = CallbackScheduler(store, make_predictor(), clock, make_policy())
    report = scheduler.recover()
    recover_s = time.perf_counter() - started
    print(f"  open + recover(): {recover_s:.2f} s; {report}")
    rss_restart, _ = rss_mib()
    print(f"  process RSS after restart {rss_restart:.0f} MiB")
    call_s, lateness_s, released = dispatch(scheduler, clock, 300)
    print(f"  catch-up due() wall time s: {quantiles(call_s)}")
    print(f"  catch-up lateness, virtual s: {quantiles(lateness_s)}")
    print(f"  released {released} in the first 300 virtual s")
    store.close()


if __name__ == "__main__":
    main()

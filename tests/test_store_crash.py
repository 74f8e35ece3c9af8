"""A writer killed with SIGKILL loses no acknowledged promise and no attempt
is dialed twice after the restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from scheduler_support import T0, make_scheduler

from callsure.engine.callbacks import AttemptState, Outcome
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import LeaseError

TESTS = Path(__file__).resolve().parent

# The writer acknowledges a promise on stdout only after create() returned,
# and announces a dial only after start_dialing() returned, as a gateway
# would before it sends the INVITE.
WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    from scheduler_support import T0, make_scheduler, request
    from callsure.engine.clock import VirtualClock

    clock = VirtualClock(T0)
    scheduler = make_scheduler(sys.argv[2], clock)
    index = 0
    while True:
        callback = scheduler.create(request(f"c{index}", request_id=f"r{index}"))
        print("ACK", f"r{index}", callback.callback_id, flush=True)
        if index % 3 == 0:
            for order in scheduler.due():
                if index % 2:
                    continue  # leave the order issued, never dialed
                scheduler.start_dialing(order.attempt_id, "writer")
                print("DIAL", order.attempt_id, flush=True)
        # 0.1 s per promise keeps every lease (120 s) alive until the kill.
        clock.advance(0.1)
        index += 1
    """
)


def run_writer_until(
    db: Path, acknowledgements: int
) -> tuple[dict[str, str], set[str]]:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(TESTS), str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    acked: dict[str, str] = {}
    dialed: set[str] = set()

    def take(line: str) -> None:
        kind, *fields = line.split()
        if kind == "ACK":
            acked[fields[0]] = fields[1]
        elif kind == "DIAL":
            dialed.add(fields[0])

    try:
        for line in writer.stdout:
            take(line)
            if len(acked) >= acknowledgements:
                os.kill(writer.pid, signal.SIGKILL)
                break
        else:
            pytest.fail(f"writer exited early: {writer.stderr.read()[-2000:]}")
        # Lines written before the kill are acknowledgements too.
        for line in writer.stdout:
            take(line)
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert writer.returncode == -signal.SIGKILL
    return acked, dialed


@pytest.mark.slow
@pytest.mark.parametrize("acknowledgements", [40, 250])
def test_sigkill_loses_nothing_and_dials_once(tmp_path, acknowledgements):
    db = tmp_path / "promises.db"
    acked, dialed = run_writer_until(db, acknowledgements)
    assert dialed, "the writer should have dialed before the kill"

    clock = VirtualClock(T0 + timedelta(hours=1))
    scheduler = make_scheduler(db, clock)
    report = scheduler.recover()
    store = scheduler.store

    for request_id, callback_id in acked.items():
        assert store.callback_for_request(request_id) == callback_id
        assert store.get_callback(callback_id) is not None
    created = {
        e.callback_id for e in store.iter_events() if e.kind == "callback.created"
    }
    assert set(acked.values()) <= created

    for attempt_id in dialed:
        attempt = store.get_attempt(attempt_id)
        assert attempt.state is AttemptState.FINAL
        assert attempt.outcome is Outcome.UNKNOWN
        with pytest.raises(LeaseError):
            scheduler.start_dialing(attempt_id, "restarted")
    assert report.unknown_outcomes == len(dialed)

    released = []
    for _ in range(12):
        clock.advance(15 * 60)
        released.extend(scheduler.due())
    assert released
    assert not {o.attempt_id for o in released} & dialed
    open_per_callback = store._db.execute(
        "SELECT callback_id, COUNT(*) FROM attempts WHERE state != 'final' "
        "GROUP BY callback_id HAVING COUNT(*) > 1"
    ).fetchall()
    assert open_per_callback == []

"""`callsure serve` on a store that another server has open.

The second server must stop before it starts Ray, with one line naming the
store and the process that has its lock, rather than fail inside the
coordinator actor with a traceback once Ray is up.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from serve_support import (
    START_TIMEOUT_S,
    ServeProcess,
    _processes_naming,
    private_folder,
)

RAY_START_LINE = "starting a local Ray"


def run_serve(folder, db) -> subprocess.CompletedProcess:
    """Run `callsure serve` on ``db`` to its exit; Ray files go to ``folder``."""
    env = dict(os.environ)
    env.update(
        {
            "CALLSURE_SERVER__GRPC_ADDRESS": "127.0.0.1:0",
            "CALLSURE_STORAGE__PATH": str(db),
            "CALLSURE_RAY__TEMP_DIR": str(folder / "ray"),
            "CALLSURE_RAY__NUM_CPUS": "2",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "callsure.actors.cli", "serve"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=folder,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=START_TIMEOUT_S)
    finally:
        # Kill what is left when the server did not stop by itself: its
        # session, then any Ray process that names its folder.
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
        for pid in _processes_naming(str(folder).encode()):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.fixture
def folders():
    # Removed even when the first server fails to start.
    created = [private_folder(), private_folder()]
    yield created
    for folder in created:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.slow
def test_second_serve_stops_before_ray(folders):
    first_folder, second_folder = folders
    # The server names the store, and locks it, by its real path.
    db = (first_folder / "callsure.db").resolve()
    first = ServeProcess(first_folder)
    try:
        worker, serve_line = Path(f"{db}.lock").read_text().splitlines()
        second = run_serve(second_folder, db)
        first_log = first.log()
    finally:
        first.kill()

    # The first server's log shows the line the second one must not print.
    assert RAY_START_LINE in first_log
    assert second.returncode == 1
    # The coordinator's worker holds the lock, and the message names the
    # `callsure serve` that started it as well.
    holder = (
        f"process {worker} (a worker of callsure serve, process {first.process.pid})"
    )
    assert serve_line == f"serve {first.process.pid}"
    assert worker != str(first.process.pid)
    assert f"the store {db} is in use by {holder} " in second.stderr
    assert RAY_START_LINE not in second.stderr
    assert "Traceback" not in second.stderr
    assert second.stdout == ""

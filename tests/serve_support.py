"""Run `callsure serve` as a real subprocess on 127.0.0.1 for tests and benches.

The server runs in its own session with a private Ray temp folder and a
private store, so killing it and the Ray processes it started touches
nothing else on the machine. Processes are killed by id only: those of the
session group, and those whose command line names the private folder.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

READY_PREFIX = "callsure serving gRPC on "
START_TIMEOUT_S = 90.0


class ServeProcess:
    """One `callsure serve` subprocess and its private folder."""

    def __init__(self, folder: Path, token: str = "", extra_env: dict | None = None):
        self.folder = folder
        self.token = token
        self.log_path = folder / "serve.log"
        env = dict(os.environ)
        env.update(
            {
                "CALLSURE_SERVER__GRPC_ADDRESS": "127.0.0.1:0",
                "CALLSURE_SERVER__TOKEN": token,
                "CALLSURE_STORAGE__PATH": str(folder / "callsure.db"),
                "CALLSURE_RAY__TEMP_DIR": str(folder / "ray"),
                "CALLSURE_RAY__NUM_CPUS": "2",
                "RAY_USAGE_STATS_ENABLED": "0",
            }
        )
        env.update(extra_env or {})
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "callsure.actors.cli", "serve"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
            cwd=folder,
            start_new_session=True,
        )
        self.address = self._wait_ready()

    def _wait_ready(self) -> str:
        found: list[str] = []

        def read() -> None:
            for raw in self.process.stdout:
                line = raw.decode(errors="replace").strip()
                if line.startswith(READY_PREFIX):
                    found.append(line[len(READY_PREFIX) :])
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(START_TIMEOUT_S)
        if not found:
            self.kill()
            raise RuntimeError(
                f"callsure serve did not start; log:\n{self.log_path.read_text()}"
            )
        return found[0]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def terminate(self, timeout_s: float = 60.0) -> int:
        """Send SIGTERM and return the exit status."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        finally:
            self._reap_ray()
            self._log.close()

    def kill(self) -> None:
        """SIGKILL the server's session and the Ray processes it started."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(30)
        self._reap_ray()
        self._log.close()

    def _reap_ray(self) -> None:
        marker = str(self.folder).encode()
        deadline = time.monotonic() + 10.0
        while True:
            leftovers = _processes_naming(marker)
            if not leftovers or time.monotonic() > deadline:
                break
            for pid in leftovers:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)


def _processes_naming(marker: bytes) -> list[int]:
    """Ids of this user's processes whose command line contains ``marker``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "cmdline").read_bytes().find(marker) >= 0:
                pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def private_folder() -> Path:
    """A short private folder: Ray's socket paths must stay under 108 bytes."""
    return Path(tempfile.mkdtemp(prefix="cs-"))


def fit_first_days(bank_log: Path, folder: Path, days: int = 5) -> Path:
    """Fit a wait model with `callsure model fit` on the log's first ``days``.

    The log is cut to those days first, so reading and fitting take a few
    seconds instead of the whole three weeks.
    """
    short_log = folder / "first-days.tsv"
    header, *rows = bank_log.read_text().splitlines(keepends=True)
    first_dates = sorted({row.split("\t")[5] for row in rows})[:days]
    kept = [row for row in rows if row.split("\t")[5] in first_dates]
    short_log.write_text(header + "".join(kept))
    path = folder / "wait.npz"
    subprocess.run(
        [sys.executable, "-m", "callsure.actors.cli", "model", "fit", str(short_log)]
        + ["--out", str(path), "--fit-days", f"1-{days}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return path

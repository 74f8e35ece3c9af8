"""Run `callsure serve` as a real subprocess on 127.0.0.1 for tests and benches.

The server runs in its own session with a private Ray temp folder and a
private store, so killing it and the Ray processes it started touches
nothing else on the machine. Processes are killed by id only: those of the
session group, and those whose command line names the private folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

READY_PREFIX = "callsure serving gRPC on "
START_TIMEOUT_S = 120.0
# What `callsure serve` prints when Ray's raylet did not register in time.
RAYLET_TIMEOUT = "its raylet did not register"


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
        self.env = env
        for attempt in range(1, RAY_START_ATTEMPTS + 1):
            self._start()
            try:
                self.address = self._wait_ready()
                return
            except RuntimeError:
                # Ray waits a fixed 30 s for its raylet; on two cores loaded
                # by other jobs that wait has run out. Start once more.
                if attempt == RAY_START_ATTEMPTS or RAYLET_TIMEOUT not in self.log():
                    raise

    def _start(self) -> None:
        self._log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "callsure.actors.cli", "serve"],
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=self.env,
            cwd=self.folder,
            start_new_session=True,
        )

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
            if not _processes_naming(marker) or time.monotonic() > deadline:
                break
            _kill_processes_naming(marker)
            time.sleep(0.2)


@contextlib.contextmanager
def serving_channel(token: str = ""):
    """Run a private `callsure serve` and yield a gRPC channel to it.

    The server is killed (SIGKILL) and its folder removed afterwards.
    """
    import grpc

    folder = private_folder()
    server = ServeProcess(folder, token=token)
    try:
        with grpc.insecure_channel(server.address) as channel:
            yield channel
    finally:
        server.kill()
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def sip_serving(customers, agents):
    """Run a private `callsure serve` with its SIP gateway and yield it.

    The gateway dials the phones of the PhoneBank ``customers`` by number
    and those of ``agents`` by agent id, and dispatches every 0.1 s.
    """
    folder = private_folder()
    environment = {
        "CALLSURE_SIP__ENABLED": "true",
        "CALLSURE_SIP__BIND_ADDRESS": "127.0.0.1",
        "CALLSURE_SIP__SIP_PORT": "0",
        "CALLSURE_SIP__RTP_PORT": "0",
        "CALLSURE_SIP__ENDPOINT_PROCESSES": "2",
        "CALLSURE_SIP__RING_TIMEOUT_S": "5",
        "CALLSURE_SIP__CUSTOMER_URI_TEMPLATE": customers.uri_template("number"),
        "CALLSURE_SIP__AGENT_URI_TEMPLATE": agents.uri_template("agent"),
        "CALLSURE_RAY__DISPATCH_INTERVAL_S": "0.1",
    }
    process = ServeProcess(folder, extra_env=environment)
    try:
        yield process
    finally:
        process.kill()
        shutil.rmtree(folder, ignore_errors=True)


class RestartableServer:
    """One `callsure serve` on a private store that a test can restart.

    ``channel`` is a gRPC channel to the running server; ``stubs`` maps
    attribute names to stub classes, made anew after each start.
    """

    def __init__(self, **stubs):
        self.folder = private_folder()
        self.stubs = stubs
        self.process = None
        self.channel = None
        self.start()

    def start(self) -> None:
        import grpc

        self.process = ServeProcess(self.folder)
        self.channel = grpc.insecure_channel(self.process.address)
        for name, stub in self.stubs.items():
            setattr(self, name, stub(self.channel))

    def restart(self) -> int:
        """Stop the server with SIGTERM, start it on the same store, and
        return the first server's exit status."""
        self.channel.close()
        status = self.process.terminate()
        self.process = None
        self.start()
        return status

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        if self.process is not None:
            self.process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


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


# Ray waits 30 s by default for its GCS to write its port file. On two busy
# cores, right after another test file stopped its own Ray, that wait ran
# out once. The GCS log in the error shows whether the process was slow or
# exited.
GCS_PORT_WAIT_S = "90"
RAY_START_ATTEMPTS = 2


def start_local_ray(namespace: str) -> Path:
    """Start an in-process local Ray on 127.0.0.1 in a private folder.

    A failed start is retried once in a fresh folder. If both fail, the
    error carries the tail of each attempt's GCS and raylet logs. A Ray
    listening off loopback is stopped with an error.
    """
    from callsure.actors.runtime import check_gcs_host, ray

    os.environ.setdefault("RAY_gcs_server_port_wait_time_s", GCS_PORT_WAIT_S)
    failures = []
    for _ in range(RAY_START_ATTEMPTS):
        folder = private_folder()
        try:
            ray.init(
                _node_ip_address="127.0.0.1",
                include_dashboard=False,
                num_cpus=2,
                namespace=namespace,
                _temp_dir=str(folder / "ray"),
                configure_logging=False,
            )
        except Exception as error:  # Ray also raises a bare Exception here
            failures.append(f"{type(error).__name__}: {error}\n{_ray_logs(folder)}")
            ray.shutdown()
            _kill_processes_naming(str(folder).encode())
            continue
        check_gcs_host(ray.get_runtime_context().gcs_address, "127.0.0.1")
        return folder
    raise RuntimeError("local Ray did not start:\n" + "\n".join(failures))


def _ray_logs(folder: Path, lines: int = 20) -> str:
    parts = []
    for name in ("gcs_server.out", "gcs_server.err", "raylet.out", "raylet.err"):
        for path in sorted(folder.glob(f"ray/session_*/logs/{name}")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(tail))
    return "\n".join(parts) or "(no Ray logs written)"


def _kill_processes_naming(marker: bytes) -> None:
    for pid in _processes_naming(marker):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

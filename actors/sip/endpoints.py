"""Supervision of pjsua2 endpoint processes (``callsure.actors.sip.worker``).

Each ``EndpointProcess`` starts one worker with a Unix socket pair, reads
its events on a thread of its own and hands them to a callback. End of
file on the socket means the process died (or stopped); the callback then
receives ``{"ev": "exit", "returncode": ...}`` and the owner decides to
restart it.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from callsure.actors.sip.wire import MessageChannel
from callsure.engine.exceptions import GatewayError

logger = logging.getLogger(__name__)

# Start-up includes a probe of the call limit by self-calls. With 75
# processes started 8 at a time on 2 cores under a load average above 50,
# one took more than 20 s.
READY_TIMEOUT_S = 60.0


class EndpointProcess:
    """One worker process and the calls placed on it.

    Parameters
    ----------
    index : int
        Position in the gateway, used in names and port offsets.
    spec : dict
        Endpoint settings sent as the worker's first message.
    on_event : callable
        ``on_event(endpoint, event)``, called on the reader thread for each
        event, and once with ``{"ev": "exit"}`` when the process ends.
    """

    def __init__(
        self,
        index: int,
        spec: dict,
        on_event: Callable[[EndpointProcess, dict], None],
    ):
        self.index = index
        self.spec = spec
        self.on_event = on_event
        self.name = spec["name"]
        self.process: subprocess.Popen | None = None
        self.channel: MessageChannel | None = None
        self.max_calls = 0
        self.sip_address = ""
        self.pid = 0
        # Call keys placed here and not yet reported DISCONNECTED; PJSUA
        # keeps a slot until then, even after the engine gave up on it.
        self.calls: set[str] = set()
        self.reserved = 0
        # Slots PJSUA still holds after reporting their call disconnected,
        # with the monotonic time they free up.
        self.held: dict[str, float] = {}
        self.alive = False
        self._ready = threading.Event()
        self._ready_event: dict = {}
        self._reader: threading.Thread | None = None

    @property
    def free_slots(self) -> int:
        if not self.alive:
            return 0
        now = time.monotonic()
        held = sum(1 for until in list(self.held.values()) if until > now)
        return self.max_calls - len(self.calls) - self.reserved - held

    def hold_slot(self, key: str, seconds: float) -> None:
        """Count a slot as taken for ``seconds`` after its call was reported ended."""
        now = time.monotonic()
        self.held = {k: until for k, until in self.held.items() if until > now}
        self.held[key] = now + seconds

    def start(self) -> None:
        """Start the worker and wait until its endpoint is ready."""
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        environment = dict(os.environ)
        debug = environment.get("CALLSURE_SIP_WORKER_LOG", "").upper() == "DEBUG"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "callsure.actors.sip.worker",
                "--fd",
                str(child.fileno()),
            ],
            pass_fds=[child.fileno()],
            env=environment,
            stdin=subprocess.DEVNULL,
            # pjlib prints to stdout before libInit applies the log level.
            stdout=None if debug else subprocess.DEVNULL,
        )
        child.close()
        self.pid = self.process.pid
        self.channel = MessageChannel(parent)
        self._ready.clear()
        self.channel.send(self.spec)
        self._reader = threading.Thread(
            target=self._read, name=f"{self.name}-reader", daemon=True
        )
        self._reader.start()
        if not self._ready.wait(READY_TIMEOUT_S):
            self.kill()
            raise GatewayError(
                f"endpoint {self.name} (pid {self.pid}) was not ready after "
                f"{READY_TIMEOUT_S} s; run it with CALLSURE_SIP_WORKER_LOG=DEBUG"
            )
        if not self._ready_event:
            raise GatewayError(
                f"endpoint {self.name} (pid {self.pid}) exited during start"
            )
        self.max_calls = int(self._ready_event["max_calls"])
        self.sip_address = self._ready_event["sip_address"]
        self.alive = True
        logger.info(
            "endpoint %s: pid %s, SIP %s, %s calls",
            self.name,
            self.pid,
            self.sip_address,
            self.max_calls,
        )

    def send(self, command: dict) -> bool:
        """Send a command; return False when the process is gone."""
        if not self.alive or self.channel is None:
            return False
        try:
            self.channel.send(command)
        except OSError:
            return False
        return True

    def _read(self) -> None:
        channel = self.channel
        while True:
            try:
                messages = channel.receive()
            except OSError:
                messages = None
            if messages is None:
                break
            for message in messages:
                if message.get("ev") == "ready":
                    self._ready_event = message
                    self._ready.set()
                    continue
                try:
                    self.on_event(self, message)
                except Exception:  # noqa: BLE001 - the reader must not die
                    logger.exception("endpoint %s: event handler failed", self.name)
        self.alive = False
        self._ready.set()
        returncode = self.process.wait() if self.process else None
        channel.close()
        try:
            self.on_event(self, {"ev": "exit", "returncode": returncode})
        except Exception:  # noqa: BLE001
            logger.exception("endpoint %s: exit handler failed", self.name)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Ask the worker to shut down cleanly; kill it after ``timeout_s``."""
        if self.process is None:
            return
        self.send({"op": "shutdown"})
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            logger.warning("endpoint %s: no clean exit, killing", self.name)
            self.kill()
        if self._reader is not None:
            self._reader.join(timeout_s)

    def kill(self) -> None:
        """Kill the worker process (by its own pid)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

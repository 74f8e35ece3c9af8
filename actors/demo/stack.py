"""Start and stop everything the demo runs: server, Ray, gateway, phones.

``DemoStack`` starts ``callsure serve``'s parts in this process (a local
Ray on 127.0.0.1, the coordinator, customer shards and agent pools, and
the gRPC server on a free port), a ``CallGateway`` whose pjsua2 endpoint
processes are children of this process, a ``DialRelay`` actor that the
coordinator dials through, and the phone banks: customers answering
callbacks, callers dialing the IVR, and agents. ``close`` stops them in
reverse order and then kills, by process id, any child left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path

import grpc

from callsure.actors.runtime import ray, start_ray, stop_ray
from callsure.engine.exceptions import CallsureError, GatewayError

logger = logging.getLogger(__name__)

STOP_GRACE_S = 2.0
KEEP_WINDOW_S = 30.0
# Customer phones ring for 1-4 s. The first word, the HUMAN verdict and
# the bridge to the agent take about 3 s more (an estimate).
DIAL_LEAD_S = 6.0
# A phone process starts in about a second; a loaded machine takes longer.
PHONES_READY_TIMEOUT_S = 60.0
ACTOR_TIMEOUT_S = 60.0


@dataclass
class DemoStack:
    """Handles on the running parts; see the module docstring."""

    config: object
    folder: Path
    loop: asyncio.AbstractEventLoop | None = None
    loop_thread: threading.Thread | None = None
    actors: object = None
    server: object = None
    address: str = ""
    channel: grpc.Channel | None = None
    relay: object = None
    gateway: object = None
    banks: dict = field(default_factory=dict)
    child_pids: list[int] = field(default_factory=list)
    ray_started: bool = False

    # ----------------------------------------------------------------- server

    def start_server(self) -> None:
        """Start Ray, the actors and the gRPC server; set ``address``."""
        from callsure.actors.deploy import deploy_actors
        from callsure.actors.server import start_server
        from callsure.actors.services import build_servicers

        self.ray_started = True
        try:
            with children_ignore_sigint(), keep_sigterm_handler():
                start_ray(self.config.ray)
        except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception
            raise CallsureError(
                f"Ray did not start on 127.0.0.1 ({exc}); the machine may be "
                "overloaded, try again when it is idle"
            ) from None
        self.loop = asyncio.new_event_loop()
        self.loop_thread = threading.Thread(
            target=self.loop.run_forever, name="demo-server", daemon=True
        )
        self.loop_thread.start()

        async def start():
            actors = await deploy_actors(self.config)
            running = await start_server(self.config.server, build_servicers(actors))
            return actors, running

        self.actors, self.server = self.run(start())
        self.address = self.server.address
        self.channel = grpc.insecure_channel(self.address)
        logger.info("demo: callsure serving gRPC on %s", self.address)

    def run(self, coroutine, timeout_s: float = ACTOR_TIMEOUT_S):
        """Run ``coroutine`` on the server's event loop and return its result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout_s)

    def ensure_pools(self, groups) -> None:
        """Create the agent pool actor of each group before agents report."""
        for group in groups:
            self.run(self.actors.pool_for(group))

    def register_relay(self, name: str) -> None:
        from callsure.actors.demo.relay import DialRelay

        self.relay = DialRelay.remote()
        ray.get(
            self.actors.coordinator.register_dialer.remote(name, self.relay),
            timeout=ACTOR_TIMEOUT_S,
        )

    # ------------------------------------------------------------ SIP parts

    def start_phones(self, name: str, behaviours: dict, default: dict, on_event):
        from callsure.actors.sip.phones import PhoneBank

        try:
            with children_ignore_sigint():
                bank = PhoneBank(
                    behaviours,
                    default,
                    name=name,
                    on_event=on_event,
                    ready_timeout_s=PHONES_READY_TIMEOUT_S,
                )
        except TimeoutError:
            raise GatewayError(
                f"phone bank {name} was not ready after "
                f"{PHONES_READY_TIMEOUT_S:g} s; the machine may be overloaded, "
                "try again when it is idle"
            ) from None
        self.banks[name] = bank
        self.child_pids.append(bank.process.pid)
        return bank

    def start_gateway(self, settings, on_outcome, on_event, backend):
        from callsure.actors.sip.gateway import CallGateway

        self.gateway = CallGateway(settings, on_outcome, on_event, backend)
        try:
            with children_ignore_sigint():
                self.gateway.start()
        finally:
            self.child_pids.extend(
                e.pid for e in self.gateway.endpoints if e.pid is not None
            )
        return self.gateway

    # ---------------------------------------------------------------- close

    def close(self) -> None:
        """Stop every part, newest first; kill leftover children by pid."""
        logger.info("demo: stopping the gateway, phones, server and Ray")
        if self.gateway is not None:
            self.child_pids.extend(
                e.pid for e in self.gateway.endpoints if e.pid is not None
            )
            _quietly("gateway", self.gateway.stop)
        for name, bank in list(self.banks.items()):
            _quietly(f"phones {name}", bank.close)
        if self.channel is not None:
            self.channel.close()
        if self.loop is not None and self.loop.is_running():
            if self.server is not None:
                _quietly(
                    "gRPC server", lambda: self.run(self.server.stop(STOP_GRACE_S))
                )
            if self.actors is not None:
                _quietly("actors", lambda: self.run(self.actors.close()))
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self.loop_thread is not None:
                self.loop_thread.join(5.0)
        if self.ray_started:
            _quietly("Ray", stop_ray)
        for pid in self.child_pids:
            _kill_if_running(pid)
        logger.info("demo: stopped")


@contextlib.contextmanager
def children_ignore_sigint():
    """Start child processes that ignore SIGINT, as an ignored signal stays
    ignored across exec.

    Ctrl-C on a terminal sends SIGINT to the whole foreground process
    group. The demo's children (Ray, pjsua2 endpoints, phones) then die at
    once, mid-call and without destroying pjsua2, while the demo itself
    stops them in order. SIGINT is ignored in this process meanwhile, so a
    Ctrl-C while children start is lost. Call from the main thread only.
    """
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def keep_sigterm_handler():
    """Put this process's SIGTERM handler back after the body replaced it.

    ``ray.init`` on the main thread installs a handler that exits at once,
    without the demo's orderly stop, which left Ray's agents running. Call
    from the main thread only.
    """
    previous = signal.getsignal(signal.SIGTERM)
    try:
        yield
    finally:
        # getsignal returns None for a handler not installed from Python.
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _quietly(what: str, function) -> None:
    try:
        function()
    except Exception:  # noqa: BLE001 - the rest must still be stopped
        logger.exception("demo: stopping %s failed", what)


def _kill_if_running(pid: int) -> None:
    """Kill our own child ``pid`` if it still runs (a stop that hung)."""
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return
    if finished:
        return
    logger.warning("demo: process %s still running after stop, killing it", pid)
    try:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


def demo_config(
    config, folder: Path, db_path: str | None, ray_folder: Path, prior=None
):
    """Build the demo server's configuration: loopback, port 0, own store.

    ``ray_folder`` is Ray's session folder unless ``ray.temp_dir`` is set.
    It must be short, because Ray puts Unix sockets in it and a socket
    path is limited to 107 bytes. ``prior`` (a ``StaticForecast``) is the
    forecast the prediction model starts from before the live feed of
    the demo's contact and agent events teaches it.
    """
    store = db_path or str(folder / "callsure.db")
    return config.replace(
        server={"grpc_address": "127.0.0.1:0", "token": ""},
        storage={"path": str(Path(store).expanduser().resolve())},
        ray={
            "address": "",
            "node_ip_address": "127.0.0.1",
            "temp_dir": config.ray.temp_dir or str(ray_folder),
            "namespace": f"callsure-demo-{os.getpid()}",
            "dispatch_interval_s": 0.25,
        },
        # Ringing and answer detection are not compressed: they add about
        # 10 s to every callback, so the 120 s default would hide nothing.
        prediction={"keep_window_s": KEEP_WINDOW_S},
        policy={"dial_lead_s": DIAL_LEAD_S},
        **_prior_section(prior),
    )


def _prior_section(prior) -> dict:
    if prior is None:
        return {}
    return {
        "forecast_prior": {
            "arrivals_per_s": prior.arrivals_per_s,
            "agents_on_duty": prior.agents_on_duty,
            "handle_s": max(1.0, prior.mean_handle_s),
            "patience_s": max(1.0, prior.mean_patience_s),
        }
    }


def gateway_settings(config, customers_address: str, agents_address: str, speed):
    """Build the gateway's settings: the demo's phone banks, shorter timers."""
    from callsure.actors.sip.gateway import GatewaySettings

    settings = GatewaySettings.from_config(config)
    return replace(
        settings,
        bind_address="127.0.0.1",
        sip_port=0,
        rtp_port=0,
        trunk_sources=("127.0.0.1",),
        customer_uri_template=f"sip:{{number}}@{customers_address}",
        agent_uri_template=f"sip:{{agent}}@{agents_address}",
        # Four processes of the wheel's four calls: eight IVR callers and
        # four bridged callbacks (two legs each) at once.
        endpoint_processes=4,
        ring_timeout_s=max(5.0, settings.ring_timeout_s / speed * 2),
        agent_ring_timeout_s=10.0,
        bridge_method="conference",
    )

"""The call gateway: pjsua2 endpoint processes behind one dial interface.

``CallGateway`` owns a set of endpoint processes (``callsure.actors.sip.
worker``), places each dial order on one with free call slots, runs the
call flow of each order (``callsure.actors.sip.callflow``) and the inbound
IVR (``callsure.actors.sip.ivr``), and reports one outcome per attempt.

Threading: each endpoint has a reader thread that only queues its events.
One dispatcher thread takes events and timer expiries from that queue in
order and runs every call flow and IVR session, so the flows need no locks
and see their events in the order the endpoint sent them. ``dial`` may be
called from any thread; it queues the order too. The IVR's calls to its
backend (the predicted wait, storing a promise) may wait seconds for the
coordinator, so they run on one backend thread (``run_in_background``)
and their results come back through the same queue. A slow coordinator
then delays only those results, not the other calls.

What survives a crash: an endpoint process that dies is detected by end
of file on its socket; every attempt it held is reported as
``NETWORK_FAILURE``, and the process is restarted. A gateway restart loses
the calls in progress (their attempts' leases expire and the coordinator's
recovery finalises them) but no promise: promises live in the store.

Idempotency: ``dial`` ignores an order whose ``idempotency_key`` it has
already accepted, so a redelivered order is never dialed twice by one
gateway.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from callsure.actors.sip.callflow import CallReport, OutboundFlow
from callsure.actors.sip.endpoints import EndpointProcess
from callsure.actors.sip.prompts import PromptLibrary
from callsure.engine.callbacks import DialOrder
from callsure.engine.exceptions import GatewayError
from callsure.engine.phone import mask_number

logger = logging.getLogger(__name__)

# A dial order waits this long for a free call slot before it is reported
# NOT_DIALED; the coordinator then releases it again.
PLACEMENT_TIMEOUT_S = 30.0
RESTART_DELAY_S = 0.5


@dataclass(frozen=True)
class GatewaySettings:
    """The ``[sip]`` configuration section as the gateway uses it."""

    bind_address: str = "127.0.0.1"
    sip_port: int = 0
    rtp_port: int = 0
    rtp_ports_per_endpoint: int = 100
    endpoint_processes: int = 2
    max_calls_per_endpoint: int = 0
    customer_uri_template: str = "sip:{number}@127.0.0.1:5070"
    agent_uri_template: str = "sip:{agent}@127.0.0.1:5070"
    outbound_proxy: str = ""
    auth_realm: str = "*"
    auth_username: str = ""
    auth_password: str = ""
    trunk_sources: tuple[str, ...] = ("127.0.0.1",)
    codecs: tuple[str, ...] = ("PCMU/8000", "PCMA/8000")
    packet_ms: int = 20
    send_silence_suppression: bool = False
    ring_timeout_s: float = 30.0
    analysis_timeout_s: float = 8.0
    confirm_with_dtmf: bool = False
    confirm_timeout_s: float = 10.0
    agent_ring_timeout_s: float = 20.0
    bridge_method: str = "conference"
    machine_action: str = "hang_up"
    beep_wait_s: float = 6.0
    scenario: str = ""
    prompts_dir: str = ""

    @classmethod
    def from_config(cls, config) -> GatewaySettings:
        """Build from a loaded ``Config`` (its ``sip`` section)."""
        values = dict(config.sip)
        # Whether `callsure serve` starts a gateway is not a gateway setting.
        values.pop("enabled", None)
        values["trunk_sources"] = tuple(values["trunk_sources"])
        values["codecs"] = tuple(values["codecs"])
        return cls(**values)

    def __repr__(self) -> str:
        # The digest password never reaches a log through repr().
        password = "<secret>" if self.auth_password else ""
        return f"GatewaySettings(bind_address={self.bind_address!r}, ...{password})"

    def customer_uri(self, number: str) -> str:
        return self.customer_uri_template.format(number=number)

    def agent_uri(self, agent: str) -> str:
        return self.agent_uri_template.format(agent=agent)


class _Timer:
    __slots__ = ("due", "callback", "cancelled")

    def __init__(self, due: float, callback: Callable[[], None]):
        self.due = due
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class CallGateway:
    """Dial callbacks and answer inbound calls on pjsua2 endpoint processes.

    Parameters
    ----------
    settings : GatewaySettings
    on_outcome : callable
        ``on_outcome(report: CallReport)``, called once per dial order on
        the dispatcher thread. Keep it short; hand long work to a queue.
    on_event : callable, optional
        ``on_event(kind: str, payload: dict)`` for the event stream
        (``call.dialing``, ``call.answered``, ``call.verdict``,
        ``call.bridged``, ``call.transfer``, ``call.ended``, ``ivr.*``,
        ``sip.rejected``).
    ivr_backend : optional
        Object with the methods of ``callsure.actors.sip.ivr.IvrBackend``;
        without it inbound calls are rejected with 503.
    """

    def __init__(
        self,
        settings: GatewaySettings,
        on_outcome: Callable[[CallReport], None],
        on_event: Callable[[str, dict], None] | None = None,
        ivr_backend=None,
    ):
        self.settings = settings
        self.on_outcome = on_outcome
        self.on_event = on_event
        self.ivr_backend = ivr_backend
        self.prompts = PromptLibrary(settings.prompts_dir or None)
        self.scenario = None
        self.endpoints: list[EndpointProcess] = []
        self._queue: queue.Queue = queue.Queue()
        self._timers: list[tuple[float, int, _Timer]] = []
        self._sequence = itertools.count()
        self._flows: dict[str, object] = {}
        self._pending: list[tuple[float, DialOrder]] = []
        self._accepted_keys: set[str] = set()
        self._dispatcher: threading.Thread | None = None
        self._backend_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._running = False
        self._stopping = False
        self.rejected_sources: dict[str, int] = {}

    # -------------------------------------------------------------- lifecycle

    def start(self) -> None:
        """Start the endpoint processes and the dispatcher thread."""
        from callsure.actors.sip.scenario import load_scenario

        self.scenario = load_scenario(self.settings.scenario or None, self.prompts)
        self._running = True
        # One thread, because the in-process backend shares a scheduler
        # that is not safe to call from two threads at once.
        self._backend_thread = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="sip-ivr-backend"
        )
        self._dispatcher = threading.Thread(
            target=self._dispatch, name="sip-gateway", daemon=True
        )
        self._dispatcher.start()
        try:
            for index in range(self.settings.endpoint_processes):
                endpoint = EndpointProcess(
                    index, self._endpoint_spec(index), self._on_endpoint_event
                )
                endpoint.start()
                self.endpoints.append(endpoint)
        except GatewayError:
            self.stop()
            raise
        logger.info(
            "gateway: %s endpoints, %s call slots",
            len(self.endpoints),
            self.capacity,
        )

    def stop(self) -> None:
        """Stop every endpoint process, then the dispatcher."""
        self._stopping = True
        for endpoint in self.endpoints:
            endpoint.stop()
        self._running = False
        if self._backend_thread is not None:
            self._backend_thread.shutdown(wait=False, cancel_futures=True)
        self._queue.put(("stop", None, None))
        if self._dispatcher is not None:
            self._dispatcher.join(5.0)

    def __enter__(self) -> CallGateway:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def capacity(self) -> int:
        """Call slots over all live endpoints."""
        return sum(e.max_calls for e in self.endpoints if e.alive)

    def free_lines(self) -> int:
        """Orders that could be dialed now; approximate when read off-thread."""
        legs = self._legs_per_order()
        lines = sum(e.free_slots // legs for e in list(self.endpoints) if e.alive)
        return lines - len(self._pending)

    @property
    def sip_addresses(self) -> list[str]:
        """``HOST:PORT`` of each endpoint, where a trunk sends inbound calls."""
        return [e.sip_address for e in self.endpoints if e.alive]

    def _endpoint_spec(self, index: int) -> dict:
        settings = self.settings
        spec = {
            "name": f"sip-{index}",
            "bind_address": settings.bind_address,
            "sip_port": settings.sip_port + index if settings.sip_port else 0,
            "rtp_port": (
                settings.rtp_port + index * settings.rtp_ports_per_endpoint
                if settings.rtp_port
                else 0
            ),
            "rtp_port_range": (
                settings.rtp_ports_per_endpoint if settings.rtp_port else 0
            ),
            "max_calls": settings.max_calls_per_endpoint,
            "outbound_proxy": settings.outbound_proxy,
            "trunk_sources": list(settings.trunk_sources),
            "codecs": list(settings.codecs),
            "ptime_ms": settings.packet_ms,
            "bridge_frame_ms": settings.packet_ms,
            "poll_ms": settings.packet_ms,
            "tx_vad": settings.send_silence_suppression,
        }
        if settings.packet_ms > 20:
            # Two packets of prefetch, as the capacity bench measured.
            spec["jb_min_prefetch_ms"] = 2 * settings.packet_ms
        if settings.auth_username:
            spec["credentials"] = {
                "realm": settings.auth_realm,
                "username": settings.auth_username,
                "password": settings.auth_password,
            }
        return spec

    # ------------------------------------------------------------- interface

    def dial(self, order: DialOrder) -> None:
        """Queue one dial order; its outcome arrives through ``on_outcome``.

        An order whose ``idempotency_key`` was already accepted is ignored.
        """
        self._queue.put(("dial", order, None))

    def update_settings(self, **changes) -> None:
        """Change call-flow settings (timers, confirmation, bridge method).

        Applies to orders dialed afterwards. Endpoint settings (addresses,
        ports, trunk, credentials) need a restart and are rejected here.
        """
        fixed = {
            "bind_address",
            "sip_port",
            "rtp_port",
            "rtp_ports_per_endpoint",
            "endpoint_processes",
            "max_calls_per_endpoint",
            "outbound_proxy",
            "auth_realm",
            "auth_username",
            "auth_password",
            "trunk_sources",
            "codecs",
            "prompts_dir",
            "scenario",
        }
        blocked = sorted(fixed & set(changes))
        if blocked:
            raise ValueError(
                f"cannot change {', '.join(blocked)} on a running gateway; "
                "restart it with the new configuration"
            )
        self.settings = replace(self.settings, **changes)

    def stats(self, timeout_s: float = 2.0) -> list[dict]:
        """Return each endpoint's counters (frames, CPU seconds, memory)."""
        results: list[dict] = []
        done = threading.Event()
        live = [e for e in self.endpoints if e.alive]
        request = next(self._sequence)

        def collect(event):
            results.append(event)
            if len(results) >= len(live):
                done.set()

        self._stats_waiters = (request, collect)
        for endpoint in live:
            endpoint.send({"op": "stats", "request": request})
        done.wait(timeout_s)
        return results

    # ------------------------------------------------------------ dispatcher

    def schedule(self, delay_s: float, callback: Callable[[], None]) -> _Timer:
        """Run ``callback`` on the dispatcher thread after ``delay_s``."""
        timer = _Timer(time.monotonic() + delay_s, callback)
        self._queue.put(("timer", timer, None))
        return timer

    def run_in_background(
        self,
        work: Callable[[], object],
        done: Callable[[object, BaseException | None], None],
    ) -> None:
        """Run ``work`` on the backend thread, then ``done`` on the dispatcher.

        ``done(result, None)`` gets the result, or ``done(None, error)`` the
        exception ``work`` raised.
        """
        if self._backend_thread is None:
            done(None, GatewayError("the gateway is not started"))
            return
        try:
            future = self._backend_thread.submit(work)
        except RuntimeError:
            done(None, GatewayError("the gateway is stopping"))
            return
        future.add_done_callback(
            lambda finished: self._queue.put(("result", (done, finished), None))
        )

    def send(self, endpoint: EndpointProcess, command: dict) -> None:
        """Send a command to an endpoint; a dial turns a reservation into a call."""
        if command.get("op") == "dial":
            endpoint.calls.add(command["call"])
            flow = self._flows.get(command["call"])
            if flow is not None and getattr(flow, "reserved_legs", 0) > 0:
                flow.reserved_legs -= 1
                endpoint.reserved -= 1
        if not endpoint.send(command):
            logger.warning(
                "endpoint %s: command %s lost, process gone",
                endpoint.name,
                command.get("op"),
            )

    def publish(self, kind: str, flow, payload: dict) -> None:
        if self.on_event is None:
            return
        body = dict(payload)
        order = getattr(flow, "order", None)
        if order is not None:
            body.setdefault("attempt_id", order.attempt_id)
            body.setdefault("callback_id", order.callback_id)
        else:
            body.setdefault("call", getattr(flow, "key", ""))
        try:
            self.on_event(kind, body)
        except Exception:  # noqa: BLE001 - a sink failure must not stop calls
            logger.exception("gateway: event sink failed on %s", kind)

    def report(self, flow, report: CallReport) -> None:
        logger.info(
            "attempt %s: %s (%s)",
            report.attempt_id,
            report.outcome.value,
            report.detail,
        )
        self.publish(
            "call.outcome",
            flow,
            {"outcome": report.outcome.value, "detail": report.detail},
        )
        try:
            self.on_outcome(report)
        except Exception:  # noqa: BLE001 - keep dispatching other calls
            logger.exception("attempt %s: outcome sink failed", report.attempt_id)

    def forget(self, flow) -> None:
        for key in flow.keys:
            self._flows.pop(key, None)
        if getattr(flow, "reserved_legs", 0):
            flow.endpoint.reserved -= flow.reserved_legs
            flow.reserved_legs = 0
        self.publish("call.ended", flow, {})
        self._place_pending()

    def _on_endpoint_event(self, endpoint: EndpointProcess, event: dict) -> None:
        # Reader thread: queue only, the dispatcher does the work.
        self._queue.put(("event", endpoint, event))

    def _dispatch(self) -> None:
        while True:
            timeout = None
            if self._timers:
                timeout = max(0.0, self._timers[0][0] - time.monotonic())
            try:
                kind, subject, event = self._queue.get(timeout=timeout)
            except queue.Empty:
                kind = None
            if kind == "stop":
                return
            try:
                if kind == "dial":
                    self._accept(subject)
                elif kind == "event":
                    self._handle_event(subject, event)
                elif kind == "result":
                    done, finished = subject
                    if not finished.cancelled():
                        error = finished.exception()
                        done(None if error else finished.result(), error)
                elif kind == "timer":
                    heapq.heappush(
                        self._timers, (subject.due, next(self._sequence), subject)
                    )
                self._run_due_timers()
            except Exception:  # noqa: BLE001 - the dispatcher must not die
                logger.exception("gateway: dispatch of %s failed", kind)

    def _run_due_timers(self) -> None:
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, timer = heapq.heappop(self._timers)
            if not timer.cancelled:
                timer.callback()

    # ------------------------------------------------------------- placement

    def _legs_per_order(self) -> int:
        return 2 if self.settings.bridge_method == "conference" else 1

    def _accept(self, order: DialOrder) -> None:
        if order.idempotency_key in self._accepted_keys:
            logger.warning(
                "attempt %s: order already accepted, not dialed again",
                order.attempt_id,
            )
            return
        self._accepted_keys.add(order.idempotency_key)
        self._pending.append((time.monotonic() + PLACEMENT_TIMEOUT_S, order))
        self._place_pending()
        if self._pending:
            self.schedule(1.0, self._place_pending)

    def _place_pending(self) -> None:
        legs = self._legs_per_order()
        still_pending = []
        for deadline, order in self._pending:
            endpoint = max(self.endpoints, key=lambda e: e.free_slots, default=None)
            if endpoint is not None and endpoint.free_slots >= legs:
                self._start_flow(order, endpoint, legs)
            elif time.monotonic() >= deadline:
                self._report_not_dialed(order)
            else:
                still_pending.append((deadline, order))
        self._pending = still_pending

    def _start_flow(self, order: DialOrder, endpoint: EndpointProcess, legs: int):
        flow = OutboundFlow(self, order, endpoint)
        endpoint.reserved += legs
        flow.reserved_legs = legs
        for key in flow.keys:
            self._flows[key] = flow
        flow.start()

    def requeue(self, flow) -> None:
        """Place a flow's order again: its endpoint had no free slot after all."""
        self.forget(flow)
        self._pending.append((time.monotonic() + PLACEMENT_TIMEOUT_S, flow.order))
        self.schedule(0.2, self._place_pending)

    def _report_not_dialed(self, order: DialOrder) -> None:
        from callsure.engine.callbacks import Outcome

        logger.warning(
            "attempt %s: no free call slot for %s s, not dialed (%s)",
            order.attempt_id,
            PLACEMENT_TIMEOUT_S,
            mask_number(order.phone_number),
        )
        report = CallReport(
            attempt_id=order.attempt_id,
            callback_id=order.callback_id,
            outcome=Outcome.NOT_DIALED,
            detail="no free call slot on the gateway",
        )
        try:
            self.on_outcome(report)
        except Exception:  # noqa: BLE001
            logger.exception("attempt %s: outcome sink failed", order.attempt_id)

    # ----------------------------------------------------------------- events

    def _handle_event(self, endpoint: EndpointProcess, event: dict) -> None:
        kind = event.get("ev")
        if logger.isEnabledFor(logging.DEBUG) and kind not in ("stats", "dsp"):
            logger.debug("endpoint %s: %s", endpoint.name, event)
        if kind == "exit":
            self._on_endpoint_exit(endpoint, event)
            return
        if kind == "stats":
            waiter = getattr(self, "_stats_waiters", None)
            if waiter and waiter[0] == event.get("request"):
                event["endpoint"] = endpoint.name
                event["pid"] = endpoint.pid
                waiter[1](event)
            return
        if kind == "rejected":
            self._on_rejected(event)
            return
        if kind == "incoming":
            self._on_incoming(endpoint, event)
            return
        if kind == "error":
            logger.warning("endpoint %s: %s", endpoint.name, event.get("message"))
            return
        key = event.get("call") or event.get("first")
        if kind == "state" and event.get("state") == "DISCONNECTED":
            endpoint.calls.discard(key)
            if event.get("slot_held_s"):
                endpoint.hold_slot(key, float(event["slot_held_s"]))
            if event.get("no_free_slot"):
                # PJSUA holds a slot this gateway thought free (a call still
                # ending); count it taken until any INVITE transaction ends.
                endpoint.hold_slot(f"{key}#unaccounted", 33.0)
        flow = self._flows.get(key)
        if flow is not None:
            flow.on_event(key, event)
        if kind == "state" and event.get("state") == "DISCONNECTED":
            self._place_pending()

    def _on_rejected(self, event: dict) -> None:
        source = event["source"]
        count = int(event["count"])
        if source not in self.rejected_sources:
            logger.warning("sip: rejected INVITE from untrusted source %s", source)
        self.rejected_sources[source] = max(count, self.rejected_sources.get(source, 0))
        self.publish("sip.rejected", None, {"source": source, "count": count})

    def _on_incoming(self, endpoint: EndpointProcess, event: dict) -> None:
        from callsure.actors.sip.ivr import IvrSession

        key = event["call"]
        endpoint.calls.add(key)
        if self.ivr_backend is None or self.scenario is None:
            endpoint.send({"op": "hangup", "call": key, "code": 503})
            return
        session = IvrSession(self, endpoint, key, event, self.scenario)
        self._flows[key] = session
        session.start()

    def _on_endpoint_exit(self, endpoint: EndpointProcess, event: dict) -> None:
        lost = {id(f): f for f in self._flows.values() if f.endpoint is endpoint}
        endpoint.calls.clear()
        endpoint.reserved = 0
        endpoint.held.clear()
        for flow in lost.values():
            flow.reserved_legs = 0
            flow.on_endpoint_lost()
        if self._stopping:
            return
        logger.error(
            "endpoint %s: process %s exited with %s; %s calls failed, restarting",
            endpoint.name,
            endpoint.pid,
            event.get("returncode"),
            len(lost),
        )
        self.publish(
            "sip.endpoint_restarted",
            None,
            {"endpoint": endpoint.name, "returncode": event.get("returncode")},
        )
        self.schedule(RESTART_DELAY_S, lambda: self._restart(endpoint))

    def _restart(self, endpoint: EndpointProcess) -> None:
        if self._stopping:
            return
        try:
            endpoint.start()
        except GatewayError:
            logger.exception("endpoint %s: restart failed, retrying", endpoint.name)
            self.schedule(5.0, lambda: self._restart(endpoint))
            return
        self._place_pending()


def default_prompts_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "data" / "prompts"

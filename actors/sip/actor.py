"""``CallGatewayActor``: a ``CallGateway`` hosted in Ray, dialing for the coordinator.

The actor implements ``callsure.actors.gateway_api.Dialer``:

- ``start()`` starts the endpoint processes and registers the actor with
  the coordinator under its name (again after a restart of the actor).
  It then pings the coordinator every ``REGISTER_CHECK_INTERVAL_S`` and
  registers again when the coordinator's process changed, because a
  restarted coordinator has no dialers;
- ``dial(order)`` returns ``False`` when no endpoint has a free line,
  ``True`` for an order whose idempotency key it has seen, and otherwise
  claims the attempt with ``coordinator.start_dialing`` (not dialing when
  that raises ``LeaseError``) and hands the order to the gateway;
- each outcome goes back with ``coordinator.report_outcome``, and the
  leases of calls in progress are renewed every ``RENEW_INTERVAL_S``.

With ``inbound_ivr`` the gateway answers inbound calls with the surge
IVR, served by a ``CoordinatorIvrBackend`` over the coordinator and the
customer shards; without it inbound calls get 503.

What it owns: the endpoint processes and the calls on them. What survives
a restart: nothing in memory. Ray re-runs the constructor, the caller runs
``start`` again, and attempts that were in progress finish through lease
expiry in the coordinator's recovery (``UNKNOWN``).

The endpoint processes are plain child processes of the actor, not Ray
actors, because the gateway needs one per four calls with the PyPI pjsua2
wheel and a Ray actor costs more memory: bench/sip_capacity.py measured an
idle endpoint process at 43 MB resident (21-23 MB proportional) and an
idle endpoint in a Ray actor at 98-99 MB resident (53-64 MB proportional).
"""

from __future__ import annotations

import asyncio
import logging
import random

import ray

from callsure.actors.gateway_api import Dialer
from callsure.actors.sip.callflow import CallReport
from callsure.actors.sip.coordinator_backend import (
    CoordinatorIvrBackend,
    EngineActors,
)
from callsure.actors.sip.gateway import CallGateway, GatewaySettings
from callsure.engine.exceptions import LeaseError

logger = logging.getLogger(__name__)

RENEW_INTERVAL_S = 30.0
REGISTER_CHECK_INTERVAL_S = 5.0


@ray.remote(max_restarts=-1)
class CallGatewayActor(Dialer):
    """One call gateway as a Ray actor.

    Parameters
    ----------
    config : Config
        The loaded configuration; its ``sip`` section sets up the gateway
        and ``ray.namespace`` locates the coordinator.
    name : str
        Name under which the actor registers as a dialer; also the lease
        owner of the attempts it dials.
    coordinator_name : str, optional
        Named actor of the coordinator.
    inbound_ivr : bool
        Answer inbound calls with the IVR; needs the customer shards that
        ``callsure serve`` deploys (``ray.customer_shards`` of them).
    """

    def __init__(
        self,
        config,
        name: str = "gateway-1",
        coordinator_name=None,
        inbound_ivr: bool = False,
    ):
        from callsure.actors.coordinator import COORDINATOR_NAME

        self.name = name
        self.settings = GatewaySettings.from_config(config)
        self.namespace = config.ray.namespace
        self.coordinator_name = coordinator_name or COORDINATOR_NAME
        self.inbound_ivr = inbound_ivr
        self.customer_shards = config.ray.customer_shards
        self.time_zone = config.prediction.zone
        self.coordinator_pid: int | None = None
        self._watcher: asyncio.Task | None = None
        self.gateway: CallGateway | None = None
        self.coordinator = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.in_progress: set[str] = set()
        self.seen_keys: set[str] = set()
        self._renewer: asyncio.Task | None = None

    async def start(self) -> list[str]:
        """Start the endpoints, register with the coordinator; return SIP addresses."""
        self.loop = asyncio.get_running_loop()
        self.coordinator = ray.get_actor(
            self.coordinator_name, namespace=self.namespace
        )
        if self.gateway is None:
            backend = self._ivr_backend() if self.inbound_ivr else None
            self.gateway = CallGateway(
                self.settings, self._on_outcome, ivr_backend=backend
            )
            await asyncio.to_thread(self.gateway.start)
            logger.info(
                "gateway %s: SIP on %s, endpoint processes %s, inbound IVR %s",
                self.name,
                ", ".join(self.gateway.sip_addresses),
                [e.pid for e in self.gateway.endpoints],
                "on" if backend else "off",
            )
        await self._register()
        if self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_leases())
        if self._watcher is None:
            self._watcher = asyncio.create_task(self._keep_registered())
        return self.gateway.sip_addresses

    def _ivr_backend(self) -> CoordinatorIvrBackend:
        from callsure.actors.deploy import SHARD_NAME

        shards = [
            ray.get_actor(SHARD_NAME.format(index=index), namespace=self.namespace)
            for index in range(self.customer_shards)
        ]
        actors = EngineActors(self.coordinator, shards)
        return CoordinatorIvrBackend(actors, self.loop, self.time_zone)

    async def _register(self) -> None:
        self.coordinator_pid = await self.coordinator.ping.remote()
        handle = ray.get_runtime_context().current_actor
        await self.coordinator.register_dialer.remote(self.name, handle)

    async def _keep_registered(self) -> None:
        while True:
            await asyncio.sleep(REGISTER_CHECK_INTERVAL_S * random.uniform(0.9, 1.1))
            try:
                pid = await self.coordinator.ping.remote()
                if pid != self.coordinator_pid:
                    logger.warning(
                        "gateway %s: coordinator restarted (process %s, was %s); "
                        "registering again",
                        self.name,
                        pid,
                        self.coordinator_pid,
                    )
                    await self._register()
            except Exception:  # noqa: BLE001 - check again next time
                logger.exception("gateway %s: coordinator check failed", self.name)

    async def endpoint_pids(self) -> list[int]:
        """Return the process ids of the running endpoint processes."""
        if self.gateway is None:
            return []
        return [e.pid for e in self.gateway.endpoints if e.pid is not None]

    async def stop(self) -> None:
        """Unregister from the coordinator and stop the endpoint processes."""
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        if self.coordinator is not None:
            try:
                await self.coordinator.unregister_dialer.remote(self.name)
            except Exception:  # noqa: BLE001 - the endpoints must stop anyway
                logger.exception("gateway %s: unregistering failed", self.name)
        if self._renewer is not None:
            self._renewer.cancel()
            self._renewer = None
        if self.gateway is not None:
            await asyncio.to_thread(self.gateway.stop)
            self.gateway = None

    async def dial(self, order) -> bool:
        if order.idempotency_key in self.seen_keys:
            return True
        if self.gateway is None or self.gateway.free_lines() < 1:
            return False
        self.seen_keys.add(order.idempotency_key)
        try:
            await self.coordinator.start_dialing.remote(order.attempt_id, self.name)
        except LeaseError:
            logger.warning(
                "attempt %s: lease held elsewhere, not dialed", order.attempt_id
            )
            return True
        self.in_progress.add(order.attempt_id)
        self.gateway.dial(order)
        return True

    async def sip_addresses(self) -> list[str]:
        return self.gateway.sip_addresses if self.gateway else []

    def _on_outcome(self, report: CallReport) -> None:
        # Runs on the gateway's dispatcher thread.
        asyncio.run_coroutine_threadsafe(self._report(report), self.loop)

    async def _report(self, report: CallReport) -> None:
        self.in_progress.discard(report.attempt_id)
        try:
            await self.coordinator.report_outcome.remote(
                report.attempt_id,
                report.outcome,
                sit_code=report.sit_code,
                detail=report.detail,
                agent_id=report.agent_id,
            )
        except Exception:  # noqa: BLE001 - the lease expiry finalises it
            logger.exception("attempt %s: outcome report failed", report.attempt_id)

    async def _renew_leases(self) -> None:
        while True:
            await asyncio.sleep(RENEW_INTERVAL_S * random.uniform(0.9, 1.1))
            for attempt_id in list(self.in_progress):
                try:
                    await self.coordinator.renew_lease.remote(attempt_id, self.name)
                except Exception:  # noqa: BLE001 - keep renewing the others
                    logger.exception("attempt %s: lease renewal failed", attempt_id)

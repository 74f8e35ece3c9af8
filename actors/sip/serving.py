"""Start and stop the SIP gateway of ``callsure serve`` (``[sip] enabled``).

The gateway is a ``CallGatewayActor`` owned by the serving process (not
detached): it registers with the coordinator as a dialer, answers inbound
calls with the IVR over the coordinator and the customer shards, and
stops its pjsua2 endpoint processes when the server stops. Its pjsua2
endpoint processes are children of the actor's worker process, so only
``stop_gateway`` ends them; Ray's shutdown would leave them running.
"""

from __future__ import annotations

import asyncio
import logging
import os

logger = logging.getLogger(__name__)

STOP_TIMEOUT_S = 30.0


async def start_gateway(config):
    """Start the gateway actor when ``config.sip.enabled``; return its handle.

    Returns ``None`` when the gateway is disabled. The dialer name, which is
    also the lease owner of the attempts it dials, carries this process's
    id, so two servers joined to one Ray cluster do not replace each
    other's registration.
    """
    if not config.sip.enabled:
        return None
    from callsure.actors.coordinator import COORDINATOR_NAME
    from callsure.actors.sip.actor import CallGatewayActor

    name = f"sip-gateway-{os.getpid()}"
    # The actor needs no API secret; the token stays in the serving process.
    config = config.replace(server={"token": ""})
    gateway = CallGatewayActor.options(num_cpus=0).remote(
        config, name, COORDINATOR_NAME, inbound_ivr=True
    )
    addresses = await gateway.start.remote()
    pids = await gateway.endpoint_pids.remote()
    logger.info(
        "SIP gateway %s ready on %s (endpoint processes %s)",
        name,
        ", ".join(addresses),
        pids,
    )
    return gateway


async def stop_gateway(gateway) -> None:
    """Unregister the gateway and stop its endpoint processes; log a failure."""
    if gateway is None:
        return
    try:
        await asyncio.wait_for(gateway.stop.remote(), STOP_TIMEOUT_S)
    except Exception:  # noqa: BLE001 - the rest of the server must still stop
        logger.exception("SIP gateway: stop failed")
    else:
        logger.info("SIP gateway stopped")

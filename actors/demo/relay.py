"""Hand the coordinator's dial orders to a gateway outside Ray.

The coordinator sends each due callback to a registered ``Dialer``, which
must be a Ray actor (or an object living in the coordinator's process).
The demo runs its ``CallGateway`` in its own process, so that every
pjsua2 endpoint process is a child it can stop. ``DialRelay`` is the
registered dialer, and the demo takes the queued orders with ``take``.
"""

from __future__ import annotations

import asyncio

import ray

from callsure.actors.gateway_api import Dialer
from callsure.engine.callbacks import DialOrder


@ray.remote(num_cpus=0, max_restarts=0)
class DialRelay(Dialer):
    """A dialer actor that queues orders until the gateway takes them.

    It owns only the queue. An order queued when the actor dies is not
    lost, because its attempt's lease expires and the coordinator's
    recovery finalises it. ``dial`` accepts every order, because the demo
    holds an order until a customer line is free. An order held past its
    lease is finalised by the coordinator and released again.
    """

    def __init__(self):
        self._orders: asyncio.Queue | None = None

    def _queue(self) -> asyncio.Queue:
        # Created on first use, inside the actor's event loop.
        if self._orders is None:
            self._orders = asyncio.Queue()
        return self._orders

    async def dial(self, order: DialOrder) -> bool:
        self._queue().put_nowait(order)
        return True

    async def take(self, timeout_s: float) -> list[DialOrder]:
        """Return the queued orders, waiting up to ``timeout_s`` for one."""
        orders = self._queue()
        try:
            first = await asyncio.wait_for(orders.get(), timeout_s)
        except TimeoutError:
            return []
        taken = [first]
        while not orders.empty():
            taken.append(orders.get_nowait())
        return taken

"""The interface between the coordinator and the call gateways.

The coordinator releases due callbacks as ``DialOrder``s and hands each to
one registered ``Dialer``, round robin. A gateway:

1. registers once it can dial, and again after its own restart::

       coordinator = ray.get_actor(COORDINATOR_NAME, namespace=ray_namespace)
       await coordinator.register_dialer.remote("gateway-1", own_handle)

   (``COORDINATOR_NAME`` is in ``callsure.actors.coordinator``; the handle
   is the gateway's Ray actor handle, or any object with ``dial``);
2. dials at most once per ``order.idempotency_key``, and returns ``True``
   without dialing again for a repeated order with a key it has seen;
3. calls ``coordinator.start_dialing.remote(order.attempt_id, owner)``
   before it dials, and must not dial when that raises ``LeaseError``;
4. calls ``coordinator.renew_lease.remote(attempt_id, owner)`` before
   ``order.lease_expires_at`` while the call lasts;
5. reports exactly one outcome with ``coordinator.report_outcome.remote(
   attempt_id, outcome, sit_code=None, detail="", agent_id=None)``, where
   ``outcome`` is a ``callsure.engine.callbacks.Outcome`` or its value.

If a gateway never reports, the attempt's lease expires and the
coordinator's recovery finalises the attempt as ``UNKNOWN`` (or
``NOT_DIALED`` when dialing never started), so an order is never lost in
silence.
"""

from __future__ import annotations

import abc

from callsure.engine.callbacks import DialOrder


class Dialer(abc.ABC):
    """Something that dials orders: a ``CallGateway`` actor, or a peer in tests.

    ``dial`` must return quickly: it accepts the order and dials in the
    background. It returns ``False`` when the gateway has no free line.
    The coordinator then offers the order to the next dialer. When none
    accepts, it reports ``NOT_DIALED``, so the promise is released again
    and the attempt does not count.
    """

    @abc.abstractmethod
    async def dial(self, order: DialOrder) -> bool:
        """Accept ``order`` for dialing; return ``False`` when no line is free."""

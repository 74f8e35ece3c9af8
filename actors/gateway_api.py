"""The interface between the coordinator and the call gateways.

The coordinator releases due callbacks as ``DialOrder``s and hands each to
one registered ``Dialer``. A gateway dials at most once per
``order.idempotency_key`` (a repeated order with a key it has seen is
ignored), calls ``Coordinator.start_dialing`` before it dials, and reports
exactly one outcome per order through ``Coordinator.report_outcome``. If
it never reports, the attempt's lease expires and the coordinator's
recovery finalises the attempt as ``UNKNOWN``, so an order is never lost
in silence.
"""

from __future__ import annotations

import abc

from callsure.engine.callbacks import DialOrder


class Dialer(abc.ABC):
    """Something that dials orders: a ``CallGateway`` actor, or a peer in tests.

    ``dial`` is asynchronous and must return quickly: it accepts the order
    and dials in the background. It returns ``False`` when the gateway has
    no free line, and the coordinator then offers the order to the next
    gateway or, failing all, reports ``NOT_DIALED`` so the promise is
    released again (a ``NOT_DIALED`` attempt does not count).
    """

    @abc.abstractmethod
    async def dial(self, order: DialOrder) -> bool:
        """Accept ``order`` for dialing; return ``False`` when no line is free."""

    async def free_lines(self) -> int:
        """Lines free for new orders; the coordinator sends no more than that."""
        return 1_000_000

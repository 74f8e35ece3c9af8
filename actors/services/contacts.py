"""ContactService: the CTI feed of inbound contact events."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from google.rpc import error_details_pb2

from callsure.actors.batching import per_shard
from callsure.actors.convert import callback_name, event_time_of, require_text
from callsure.actors.errors import (
    ERROR_DOMAIN,
    RpcError,
    to_rpc_error,
    translate_errors,
)
from callsure.engine.callbacks import MAX_ID_LENGTH, MAX_QUEUE_LENGTH, check_length
from callsure.engine.customers import ContactEvent, ContactKind
from callsure.engine.exceptions import ValidationError
from callsure.v1 import contact_pb2, contact_pb2_grpc

logger = logging.getLogger(__name__)

AGENT_PREFIX = "agents/"
# Events of a contact stream applied with one message per shard and one to
# the coordinator, at most.
STREAM_BATCH = 256
KIND_FROM_PROTO = {
    contact_pb2.CONTACT_EVENT_TYPE_ARRIVED: ContactKind.ARRIVED,
    contact_pb2.CONTACT_EVENT_TYPE_QUEUED: ContactKind.QUEUED,
    contact_pb2.CONTACT_EVENT_TYPE_ABANDONED: ContactKind.ABANDONED,
    contact_pb2.CONTACT_EVENT_TYPE_ANSWERED: ContactKind.ANSWERED,
    contact_pb2.CONTACT_EVENT_TYPE_ENDED: ContactKind.ENDED,
}


def contact_event_from_proto(
    message, prefix: str = "event", now: datetime | None = None
) -> ContactEvent:
    """Check a ``ContactEvent`` message and convert it for the customer book."""
    contact_id = require_text(message.contact_id, f"{prefix}.contact_id", "c-1")
    check_length(f"{prefix}.contact_id", contact_id, MAX_ID_LENGTH)
    check_length(f"{prefix}.queue", message.queue, MAX_QUEUE_LENGTH)
    check_length(f"{prefix}.customer_id", message.customer_id, MAX_ID_LENGTH)
    if message.type not in KIND_FROM_PROTO:
        raise ValidationError(
            f"{prefix}.type", message.type, "send a ContactEventType other than 0"
        )
    kind = KIND_FROM_PROTO[message.type]
    now = now or datetime.now(UTC)
    when = event_time_of(message, "event_time", f"{prefix}.event_time", now)
    if when is None:
        raise ValidationError(f"{prefix}.event_time", None, "send the event's time")
    if kind is ContactKind.QUEUED and not message.queue:
        raise ValidationError(f"{prefix}.queue", "", "send the queue for QUEUED")
    agent_id = None
    if kind is ContactKind.ANSWERED:
        if not message.agent.startswith(AGENT_PREFIX) or message.agent == AGENT_PREFIX:
            raise ValidationError(
                f"{prefix}.agent", message.agent, "send agents/{agent} for ANSWERED"
            )
        agent_id = message.agent.removeprefix(AGENT_PREFIX)
        check_length(f"{prefix}.agent", agent_id, MAX_ID_LENGTH)
    return ContactEvent(
        customer_id=message.customer_id,
        kind=kind,
        time=when,
        queue=message.queue,
        agent_id=agent_id,
        call_id=contact_id,
    )


def stream_stopped(
    exc: ValidationError, accepted: int, superseded: list[str]
) -> RpcError:
    """Build the error of a stream stopped at an invalid event.

    The events before it were applied, so the error carries what the
    response would have: an ``ErrorInfo`` with the metadata
    ``accepted_count`` and the space-separated ``superseded_callbacks``.
    Long lists are clipped like every error text, and the event journal
    has them all.
    """
    error = to_rpc_error(exc)
    metadata = {
        "accepted_count": str(accepted),
        "superseded_callbacks": " ".join(superseded),
    }
    error.details.append(
        error_details_pb2.ErrorInfo(
            reason="CONTACT_STREAM_STOPPED", domain=ERROR_DOMAIN, metadata=metadata
        )
    )
    return error


class ContactServicer(contact_pb2_grpc.ContactServiceServicer):
    """Feed contact events to the customer shards and the scheduler."""

    def __init__(self, actors):
        self._actors = actors

    async def _apply(self, events: list[ContactEvent]) -> list[str]:
        # The shards record the customers' contact histories and return
        # their priorities, which place queued callers in the live queue.
        # The coordinator then feeds the prediction model and drops the
        # promises of customers an agent took. One message per shard and
        # one to the coordinator carry all the events of a batch.
        if not events:
            return []
        identified = [i for i, event in enumerate(events) if event.customer_id]
        shard_priorities = await per_shard(
            self._actors,
            [events[i].customer_id for i in identified],
            lambda shard, positions: shard.record_many.remote(
                [events[identified[position]] for position in positions]
            ),
        )
        priorities = [0] * len(events)
        for i, priority in zip(identified, shard_priorities, strict=True):
            priorities[i] = priority
        dropped = await self._actors.coordinator.record_contacts.remote(
            list(zip(events, priorities, strict=True))
        )
        for callback in dropped:
            logger.info(
                "callback %s: dropped, customer reached an agent", callback.callback_id
            )
        return [callback_name(callback.callback_id) for callback in dropped]

    async def ReportContactEvent(self, request, context):
        async with translate_errors(context, "ReportContactEvent"):
            event = contact_event_from_proto(request.event)
            superseded = await self._apply([event])
            return contact_pb2.ReportContactEventResponse(
                superseded_callbacks=superseded
            )

    async def StreamContactEvents(self, request_iterator, context):
        async with translate_errors(context, "StreamContactEvents"):
            accepted, superseded = 0, []
            async for batch in arrived_batches(request_iterator, STREAM_BATCH):
                events, invalid = [], None
                for request in batch:
                    try:
                        events.append(
                            contact_event_from_proto(
                                request.event, f"event[{accepted + len(events)}]"
                            )
                        )
                    except ValidationError as exc:
                        invalid = exc
                        break
                superseded.extend(await self._apply(events))
                accepted += len(events)
                if invalid is not None:
                    raise stream_stopped(invalid, accepted, superseded) from None
            logger.info(
                "contact stream closed after %d events at %s",
                accepted,
                datetime.now(UTC).isoformat(),
            )
            return contact_pb2.StreamContactEventsResponse(
                accepted_count=accepted, superseded_callbacks=superseded
            )


async def arrived_batches(requests, size: int):
    """Yield a stream's requests in lists of the ones already received.

    A task reads the stream while the previous list is applied, so a fast
    sender's events travel in lists of up to ``size`` and a slow sender's
    one by one, without waiting for more. A broken stream first yields the
    requests received before the break, then raises its error.
    """
    received: asyncio.Queue = asyncio.Queue(maxsize=size)

    async def read() -> None:
        try:
            async for request in requests:
                await received.put(request)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer
            await received.put(exc)
            return
        await received.put(_END)

    reader = asyncio.create_task(read())
    try:
        ended = False
        while not ended:
            batch = [await received.get()]
            while len(batch) < size and not received.empty():
                batch.append(received.get_nowait())
            if batch[-1] is _END or isinstance(batch[-1], Exception):
                ended = True
                last = batch.pop()
            if batch:
                yield batch
            if ended and last is not _END:
                raise last
    finally:
        reader.cancel()


# The last item of a stream that ended normally.
_END = object()

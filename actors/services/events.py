"""EventService: the journal as a resumable, ordered stream."""

from __future__ import annotations

import logging

from callsure.actors.convert import event_to_proto, parse_cursor
from callsure.actors.errors import translate_errors
from callsure.v1 import event_pb2, event_pb2_grpc

logger = logging.getLogger(__name__)

READ_BATCH = 500
# A follower waits this long per long-poll; the stream itself stays open.
FOLLOW_POLL_S = 10.0


class EventServicer(event_pb2_grpc.EventServiceServicer):
    """Stream journal events in sequence order after a cursor."""

    def __init__(self, actors):
        self._coordinator = actors.coordinator

    async def StreamEvents(self, request, context):
        async with translate_errors(context, "StreamEvents"):
            after_seq = parse_cursor(request.after_cursor)
            while True:
                events = await self._coordinator.read_events.remote(
                    after_seq, READ_BATCH
                )
                for event in events:
                    yield event_pb2.StreamEventsResponse(event=event_to_proto(event))
                    after_seq = event.seq
                if len(events) == READ_BATCH:
                    continue
                if not request.follow:
                    return
                await self._coordinator.wait_for_events.remote(after_seq, FOLLOW_POLL_S)

"""CallbackService: create, get, list and cancel callback promises."""

from __future__ import annotations

import logging

from callsure.actors.batching import CreateBatcher
from callsure.actors.convert import (
    GRADE_FROM_PROTO,
    STATE_FROM_PROTO,
    callback_request_from_proto,
    callback_to_proto,
    in_callback,
    parse_callback_name,
)
from callsure.actors.errors import translate_errors
from callsure.engine.exceptions import ValidationError
from callsure.engine.phone import mask_number
from callsure.v1 import callback_pb2, callback_pb2_grpc

logger = logging.getLogger(__name__)

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1000


def page_size_of(value: int) -> int:
    """Check ``page_size``: 0 means the default, above the maximum is an error."""
    if value < 0 or value > MAX_PAGE_SIZE:
        raise ValidationError(
            "page_size", value, f"send 1 to {MAX_PAGE_SIZE}, or 0 for the default"
        )
    return value or DEFAULT_PAGE_SIZE


class CallbackServicer(callback_pb2_grpc.CallbackServiceServicer):
    """Translate CallbackService calls into coordinator messages."""

    def __init__(self, actors):
        self._coordinator = actors.coordinator
        self._batcher = CreateBatcher(actors)

    async def CreateCallback(self, request, context):
        async with translate_errors(context, "CreateCallback"):
            engine_request = callback_request_from_proto(request)
            hints = request.callback.grade_hints
            if hints.grade not in GRADE_FROM_PROTO and hints.grade:
                raise ValidationError(
                    "callback.grade_hints.grade", hints.grade, "send a CustomerGrade"
                )
            try:
                callback, estimate, replayed = await self._batcher.create(
                    engine_request,
                    GRADE_FROM_PROTO.get(hints.grade, ""),
                    hints.open_complaint,
                )
            except ValidationError as exc:
                raise in_callback(exc) from None
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "callback %s: %s for %s in %s",
                    callback.callback_id,
                    "replayed" if replayed else "created",
                    mask_number(callback.phone_number),
                    callback.queue,
                )
            return callback_pb2.CreateCallbackResponse(
                callback=callback_to_proto(callback, estimate), replayed=replayed
            )

    async def GetCallback(self, request, context):
        async with translate_errors(context, "GetCallback"):
            callback_id = parse_callback_name(request.name)
            callback = await self._coordinator.get_callback.remote(callback_id)
            return callback_pb2.GetCallbackResponse(
                callback=callback_to_proto(callback)
            )

    async def ListCallbacks(self, request, context):
        async with translate_errors(context, "ListCallbacks"):
            page_size = page_size_of(request.page_size)
            state = None
            if request.state:
                if request.state not in STATE_FROM_PROTO:
                    raise ValidationError(
                        "state", request.state, "send a CallbackState value"
                    )
                state = STATE_FROM_PROTO[request.state]
            callbacks, next_token = await self._coordinator.list_callbacks.remote(
                state=state,
                customer_id=request.customer_id or None,
                queue=request.queue or None,
                page_size=page_size,
                page_token=request.page_token,
            )
            return callback_pb2.ListCallbacksResponse(
                callbacks=[callback_to_proto(callback) for callback in callbacks],
                next_page_token=next_token,
            )

    async def CancelCallback(self, request, context):
        async with translate_errors(context, "CancelCallback"):
            callback_id = parse_callback_name(request.name)
            callback = await self._coordinator.cancel_callback.remote(
                callback_id, request.reason or "cancelled through the API"
            )
            logger.info("callback %s: cancel requested", callback_id)
            return callback_pb2.CancelCallbackResponse(
                callback=callback_to_proto(callback)
            )

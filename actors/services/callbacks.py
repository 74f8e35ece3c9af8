"""CallbackService: create, get, list and cancel callback promises.

CreateCallback is the hot path of a surge, and the server process also
runs gRPC itself, so it does little per call. It checks the request and
adds it, serialized, to a batch. The coordinator builds the serialized
reply (``Coordinator.create_replies``), and the server returns it without
decoding it: ``add_callback_service`` registers the service with a
serializer that passes those bytes through.
"""

from __future__ import annotations

import logging

import grpc

from callsure.actors.batching import ReplyBatcher
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
from callsure.v1 import callback_pb2, callback_pb2_grpc

SERVICE_NAME = "callsure.v1.CallbackService"

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
        self._batcher = ReplyBatcher(actors)

    async def CreateCallback(self, request, context):
        """Create a promise; the reply is the serialized response."""
        async with translate_errors(context, "CreateCallback"):
            hints = request.callback.grade_hints
            if hints.grade not in GRADE_FROM_PROTO and hints.grade:
                raise ValidationError(
                    "callback.grade_hints.grade", hints.grade, "send a CustomerGrade"
                )
            try:
                # The full conversion names the first invalid field. The
                # coordinator converts again from the bytes, with the grading.
                engine_request = callback_request_from_proto(request)
                return await self._batcher.create(
                    request.SerializeToString(),
                    engine_request.customer_id,
                    GRADE_FROM_PROTO.get(hints.grade, ""),
                    hints.open_complaint,
                )
            except ValidationError as exc:
                raise in_callback(exc) from None

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


def _passed_through(reply) -> bytes:
    """Serialize a reply, or pass an already serialized one through."""
    if isinstance(reply, bytes):
        return reply
    return reply.SerializeToString()


def add_callback_service(servicer: CallbackServicer, server: grpc.aio.Server) -> None:
    """Register ``servicer`` as CallbackService on ``server``.

    The same handlers as the generated
    ``add_CallbackServiceServicer_to_server``, except that a reply already
    serialized (CreateCallback's) is sent as it is.
    """
    requests = {
        "CreateCallback": callback_pb2.CreateCallbackRequest,
        "GetCallback": callback_pb2.GetCallbackRequest,
        "ListCallbacks": callback_pb2.ListCallbacksRequest,
        "CancelCallback": callback_pb2.CancelCallbackRequest,
    }
    handlers = {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name),
            request_deserializer=request_type.FromString,
            response_serializer=_passed_through,
        )
        for name, request_type in requests.items()
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, handlers),)
    )
    server.add_registered_method_handlers(SERVICE_NAME, handlers)

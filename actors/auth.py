"""Bearer-token check of every call, as a grpc.aio server interceptor.

A client sends the metadata ``authorization: Bearer <token>``. Every
method, reflection included, is rejected with UNAUTHENTICATED when the
token is missing or wrong. Check and Watch of the standard health service
(``grpc.health.v1.Health``) also run for a call without ``authorization``
metadata, because load balancers probe them without credentials and they
return only a serving status. A wrong token is rejected there too. The
token is compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
import logging

import grpc

logger = logging.getLogger(__name__)

AUTHORIZATION_KEY = "authorization"
SCHEME = "Bearer "
# Health probes, which run for a call without authorization metadata.
TOKEN_EXEMPT_METHODS = frozenset(
    {"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"}
)


class BearerTokenInterceptor(grpc.aio.ServerInterceptor):
    """Reject calls whose ``authorization`` metadata lacks the bearer token."""

    def __init__(self, token: str):
        if not token:
            raise ValueError("the bearer token must not be empty")
        self._expected = (SCHEME + token).encode()
        self._rejected_count = 0

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        if handler is None or self._authorized(handler_call_details):
            return handler
        self._rejected_count += 1
        # Rate-limit the log: the first rejection, then every 100th.
        if self._rejected_count % 100 == 1:
            logger.warning(
                "rejected %s without a valid bearer token (%d rejections so far)",
                handler_call_details.method,
                self._rejected_count,
            )
        return _rejecting_handler(handler)

    def _authorized(self, handler_call_details) -> bool:
        for key, value in handler_call_details.invocation_metadata or ():
            if key == AUTHORIZATION_KEY:
                presented = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(presented, self._expected)
        return handler_call_details.method in TOKEN_EXEMPT_METHODS


async def _abort_unauthenticated(context: grpc.aio.ServicerContext) -> None:
    await context.abort(
        grpc.StatusCode.UNAUTHENTICATED,
        "missing or invalid bearer token: send the metadata "
        "'authorization: Bearer <token>' with the server's token",
    )


def _rejecting_handler(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler:
    """A handler of the same streaming shape that aborts with UNAUTHENTICATED."""

    async def unary(request, context):
        await _abort_unauthenticated(context)

    async def streaming(request, context):
        await _abort_unauthenticated(context)
        yield  # pragma: no cover - makes this an async generator

    deserializer = handler.request_deserializer
    serializer = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            streaming, deserializer, serializer
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(unary, deserializer, serializer)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(streaming, deserializer, serializer)
    return grpc.unary_unary_rpc_method_handler(unary, deserializer, serializer)

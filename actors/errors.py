"""Translation of engine errors into gRPC status codes with details.

Every servicer method runs its body inside ``translate_errors``, so a
domain error leaves the server as a canonical status code (the table in
``google/rpc/code.proto``). The details travel as a ``google.rpc.Status``
in the ``grpc-status-details-bin`` trailer, which is where grpcio-status
and the clients of other languages read them:

==========================  ===================  ==========================
engine error                status code          detail
==========================  ===================  ==========================
ValidationError             INVALID_ARGUMENT     BadRequest field violation
RequestIdReusedError        INVALID_ARGUMENT     BadRequest on request_id
ConfigError                 INVALID_ARGUMENT     BadRequest field violation
NotFoundError               NOT_FOUND            ResourceInfo
InfeasibleTimeError         FAILED_PRECONDITION  ErrorInfo TIME_INFEASIBLE
InvalidStateError           FAILED_PRECONDITION  ErrorInfo INVALID_STATE
LeaseError                  ABORTED              ErrorInfo LEASE_HELD
StorageError, GatewayError  UNAVAILABLE          ErrorInfo
Ray actor unavailable       UNAVAILABLE          ErrorInfo ACTOR_UNAVAILABLE
anything else               INTERNAL             (logged with its traceback)
==========================  ===================  ==========================
"""

from __future__ import annotations

import copyreg
import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2

from callsure.engine.exceptions import (
    CallsureError,
    ConfigError,
    GatewayError,
    InfeasibleTimeError,
    InvalidStateError,
    LeaseError,
    NotFoundError,
    StorageError,
    ValidationError,
)

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "callsure.v1"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
# Maximum length of a message or detail text in an error reply.
MAX_TEXT = 512


class RpcError(Exception):
    """A status to send to the client, raised inside a servicer method.

    Attributes
    ----------
    code : grpc.StatusCode
    message : str
    details : list of protobuf messages
        Packed into ``google.rpc.Status.details``.
    """

    def __init__(self, code: grpc.StatusCode, message: str, details=()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = list(details)


def invalid_argument(field: str, value: object, fix: str) -> RpcError:
    """Build an INVALID_ARGUMENT error naming ``field`` and ``value``."""
    return _from_validation(ValidationError(field, value, fix))


def unwrap(exc: BaseException) -> BaseException:
    """Return the engine exception inside a Ray task error, or ``exc``."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def _from_validation(exc: ValidationError) -> RpcError:
    if exc.value is None or exc.value == "":
        description = f"missing value: {exc.fix}"
    else:
        description = f"invalid value {exc.value!r}: {exc.fix}"
    violation = error_details_pb2.BadRequest.FieldViolation(
        field=exc.field, description=description
    )
    return RpcError(
        grpc.StatusCode.INVALID_ARGUMENT,
        str(exc),
        [error_details_pb2.BadRequest(field_violations=[violation])],
    )


def _error_info(
    reason: str, metadata: dict[str, str] | None = None
) -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(
        reason=reason, domain=ERROR_DOMAIN, metadata=metadata
    )


def to_rpc_error(exc: BaseException) -> RpcError:
    """Map an exception raised by the engine or Ray to an ``RpcError``.

    Texts are clipped to ``MAX_TEXT`` characters: the message travels in a
    response header, and gRPC drops a reply whose headers pass 8 KiB, so a
    request that echoes a very long value would get no error at all.
    """
    error = _map_error(exc)
    error.message = _clip(error.message)
    for detail in error.details:
        if isinstance(detail, error_details_pb2.BadRequest):
            for violation in detail.field_violations:
                violation.description = _clip(violation.description)
        elif isinstance(detail, error_details_pb2.ResourceInfo):
            detail.resource_name = _clip(detail.resource_name)
        elif isinstance(detail, error_details_pb2.PreconditionFailure):
            for violation in detail.violations:
                violation.description = _clip(violation.description)
        elif isinstance(detail, error_details_pb2.ErrorInfo):
            for key, value in list(detail.metadata.items()):
                detail.metadata[key] = _clip(value)
    return error


def _clip(text: str) -> str:
    if len(text) <= MAX_TEXT:
        return text
    return f"{text[:MAX_TEXT]}... ({len(text)} characters)"


def _map_error(exc: BaseException) -> RpcError:
    exc = unwrap(exc)
    if isinstance(exc, RpcError):
        return exc
    if isinstance(exc, ValidationError):
        return _from_validation(exc)
    if isinstance(exc, ConfigError):
        violation = error_details_pb2.BadRequest.FieldViolation(
            field=exc.key, description=f"invalid value {exc.value!r}: {exc.expected}"
        )
        return RpcError(
            grpc.StatusCode.INVALID_ARGUMENT,
            str(exc),
            [error_details_pb2.BadRequest(field_violations=[violation])],
        )
    if isinstance(exc, NotFoundError):
        info = error_details_pb2.ResourceInfo(
            resource_type=exc.kind, resource_name=str(exc.resource_id)
        )
        return RpcError(grpc.StatusCode.NOT_FOUND, str(exc), [info])
    if isinstance(exc, InfeasibleTimeError):
        metadata = {"requested_time": exc.requested.isoformat(), "reason": exc.reason}
        if exc.nearest_feasible is not None:
            metadata["nearest_feasible_time"] = exc.nearest_feasible.isoformat()
        violation = error_details_pb2.PreconditionFailure.Violation(
            type="TIME_INFEASIBLE", subject="requested_time", description=str(exc)
        )
        return RpcError(
            grpc.StatusCode.FAILED_PRECONDITION,
            str(exc),
            [
                _error_info("TIME_INFEASIBLE", metadata),
                error_details_pb2.PreconditionFailure(violations=[violation]),
            ],
        )
    if isinstance(exc, InvalidStateError):
        return RpcError(
            grpc.StatusCode.FAILED_PRECONDITION,
            str(exc),
            [_error_info("INVALID_STATE")],
        )
    if isinstance(exc, LeaseError):
        return RpcError(grpc.StatusCode.ABORTED, str(exc), [_error_info("LEASE_HELD")])
    if isinstance(exc, StorageError | GatewayError):
        reason = "STORAGE_FAILED" if isinstance(exc, StorageError) else "GATEWAY_FAILED"
        return RpcError(grpc.StatusCode.UNAVAILABLE, str(exc), [_error_info(reason)])
    if _is_actor_unavailable(exc):
        return RpcError(
            grpc.StatusCode.UNAVAILABLE,
            "the engine is restarting; retry the call",
            [_error_info("ACTOR_UNAVAILABLE")],
        )
    if isinstance(exc, CallsureError):
        return RpcError(grpc.StatusCode.INTERNAL, str(exc), [_error_info("ENGINE")])
    return RpcError(grpc.StatusCode.INTERNAL, "internal error; see the server log")


def _is_actor_unavailable(exc: BaseException) -> bool:
    try:
        from ray.exceptions import ActorDiedError, ActorUnavailableError
    except ImportError:  # pragma: no cover - Ray is a dependency
        return False
    return isinstance(exc, ActorDiedError | ActorUnavailableError)


def status_trailer(error: RpcError) -> tuple[tuple[str, bytes], ...]:
    """Encode ``error`` as the ``grpc-status-details-bin`` trailing metadata."""
    status = status_pb2.Status(code=error.code.value[0], message=error.message)
    for detail in error.details:
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return ((STATUS_DETAILS_KEY, status.SerializeToString()),)


def decode_status(rpc_error: grpc.RpcError) -> status_pb2.Status | None:
    """Read the ``google.rpc.Status`` a client received, if the server sent one."""
    for key, value in rpc_error.trailing_metadata() or ():
        if key == STATUS_DETAILS_KEY:
            return status_pb2.Status.FromString(value)
    return None


class translate_errors:  # noqa: N801 - used as a context manager, like a function
    """Abort the RPC with the mapped status when the body raises.

    ``async with translate_errors(context, "CreateCallback"): ...``. A class
    rather than ``contextlib.asynccontextmanager``, because every RPC enters
    it and the generator-based form costs several times more per call.
    """

    __slots__ = ("_context", "_method")

    def __init__(self, context: grpc.aio.ServicerContext, method: str):
        self._context = context
        self._method = method

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, exc_type, exc, traceback) -> bool:
        if exc is None or isinstance(exc, grpc.aio.AbortError):
            return False
        if not isinstance(exc, Exception):
            return False
        error = to_rpc_error(exc)
        if error.code == grpc.StatusCode.INTERNAL:
            logger.error("%s failed", self._method, exc_info=exc)
        else:
            logger.debug("%s: %s %s", self._method, error.code.name, error.message)
        await self._context.abort(error.code, error.message, status_trailer(error))
        return False


# Engine exceptions take several constructor arguments but pass one message
# to Exception.__init__, so the default pickling (cls(*args)) cannot
# rebuild them. Ray pickles them between actors and the server; these
# reducers restore the instance with its attributes instead.


def _rebuild_error(cls, args, state):
    exc = cls.__new__(cls)
    exc.args = args
    exc.__dict__.update(state)
    return exc


def _reduce_error(exc):
    return _rebuild_error, (type(exc), exc.args, dict(exc.__dict__))


def register_error_pickling() -> None:
    """Register the reducers for every ``CallsureError`` class defined so far."""
    pending = [CallsureError]
    while pending:
        cls = pending.pop()
        copyreg.pickle(cls, _reduce_error)
        pending.extend(cls.__subclasses__())


register_error_pickling()

"""The IVR backend of the demo: the public gRPC API, as an IVR vendor uses it.

``GrpcIvrBackend`` gives the gateway's IVR (``callsure.actors.sip.ivr``)
the predicted wait (``PredictionService.EstimateWait``) and stores the
customer's choice as a promise (``CallbackService.CreateCallback``). The
switch routes by the service the caller dialed, so the callback goes to
the caller's agent group rather than to the scenario's single queue.
"""

from __future__ import annotations

import itertools
import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.rpc import error_details_pb2

from callsure.actors.errors import decode_status
from callsure.actors.sip.backend import next_local_time
from callsure.engine.exceptions import (
    CallsureError,
    InfeasibleTimeError,
    ValidationError,
)
from callsure.engine.phone import mask_number
from callsure.v1 import (
    callback_pb2,
    callback_pb2_grpc,
    common_pb2,
    prediction_pb2,
    prediction_pb2_grpc,
)

logger = logging.getLogger(__name__)

RPC_TIMEOUT_S = 5.0
MODES = {
    "asap": callback_pb2.CALLBACK_MODE_ASAP,
    "at_time": callback_pb2.CALLBACK_MODE_AT_TIME,
    "predicted": callback_pb2.CALLBACK_MODE_PREDICTED,
}


class GrpcIvrBackend:
    """Serve the IVR from a callsure server over gRPC.

    Parameters
    ----------
    channel : grpc.Channel
        A synchronous channel; the IVR calls from the gateway's thread.
    directory : callable
        ``directory(number) -> (customer_id, group, vip, ahead)`` for a
        calling number, as the switch and its CRM lookup would give it.
        ``ahead`` is the number of callers ahead of it in the queue.
    time_zone : str
        IANA zone in which callers key times and hear them read back.
    on_promise : callable, optional
        ``on_promise(number, mode, callback)`` after each stored promise,
        with the ``callsure.v1.Callback`` returned.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        directory: Callable[[str], tuple[str, str, bool, int]],
        time_zone: str,
        on_promise: Callable | None = None,
    ):
        self._callbacks = callback_pb2_grpc.CallbackServiceStub(channel)
        self._prediction = prediction_pb2_grpc.PredictionServiceStub(channel)
        self._directory = directory
        self.zone = ZoneInfo(time_zone)
        self.time_zone = time_zone
        self._on_promise = on_promise
        self._serial = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]

    def estimate_wait_s(self, caller: str, queue: str) -> float:
        _, group, vip, ahead = self._directory(caller)
        request = prediction_pb2.EstimateWaitRequest(
            queue=group,
            ahead_count=ahead,
            grade=common_pb2.CUSTOMER_GRADE_VIP if vip else 0,
        )
        try:
            response = self._prediction.EstimateWait(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as error:
            raise _engine_error(error) from None
        return response.wait.mean_wait.ToTimedelta().total_seconds()

    def request_callback(
        self,
        caller: str,
        queue: str,
        mode: str,
        requested_time: str | None,
        ivr_history: tuple[str, ...],
    ) -> datetime | None:
        """Store the promise; return its time in local time (``None`` for asap)."""
        customer_id, group, vip, ahead = self._directory(caller)
        message = callback_pb2.Callback(
            customer_id=customer_id,
            phone_number=caller,
            queue=group,
            queue_position=ahead,
            mode=MODES[mode],
            ivr_history=list(ivr_history),
        )
        if vip:
            message.grade_hints.grade = common_pb2.CUSTOMER_GRADE_VIP
        if mode == "at_time":
            local_time = next_local_time(requested_time or "", self.zone)
            # With seconds, because a time keyed in the current minute
            # means now.
            message.requested_local_time = local_time.isoformat(timespec="seconds")
            message.time_zone = self.time_zone
        request = callback_pb2.CreateCallbackRequest(
            callback=message,
            request_id=f"demo-ivr-{self._session}-{next(self._serial)}",
        )
        try:
            response = self._callbacks.CreateCallback(request, timeout=RPC_TIMEOUT_S)
        except grpc.RpcError as error:
            raise _engine_error(error) from None
        callback = response.callback
        logger.info(
            "ivr: %s promise %s for %s in %s",
            mode,
            callback.name,
            mask_number(caller),
            group,
        )
        if self._on_promise is not None:
            self._on_promise(caller, mode, callback)
        if mode == "asap" or not callback.promised_window.HasField("start_time"):
            return None
        start: Timestamp = callback.promised_window.start_time
        return start.ToDatetime(tzinfo=self.zone)


def _engine_error(error: grpc.RpcError) -> CallsureError:
    """Turn a gRPC status back into the engine error the IVR handles."""
    code = error.code()
    message = error.details() or str(code)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return ValidationError("request", None, message)
    info = _error_info(error)
    if (
        code == grpc.StatusCode.FAILED_PRECONDITION
        and info is not None
        and info.reason == "TIME_INFEASIBLE"
    ):
        # The server's details carry the requested and nearest times apart.
        metadata = info.metadata
        requested = metadata.get("requested_time")
        nearest = metadata.get("nearest_feasible_time")
        return InfeasibleTimeError(
            datetime.fromisoformat(requested) if requested else datetime.now(UTC),
            datetime.fromisoformat(nearest) if nearest else None,
            metadata.get("reason", message),
        )
    return CallsureError(f"{code.name}: {message}")


def _error_info(error: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    status = decode_status(error)
    if status is None:
        return None
    for detail in status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return info
    return None

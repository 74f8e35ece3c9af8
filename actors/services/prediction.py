"""PredictionService: wait estimates and callback capacity."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from callsure.actors.convert import (
    duration_seconds,
    from_timestamp,
    require_text,
    to_timestamp,
    wait_to_proto,
)
from callsure.actors.errors import translate_errors
from callsure.engine.callbacks import MAX_QUEUE_LENGTH, check_length
from callsure.engine.exceptions import ValidationError
from callsure.v1 import common_pb2, prediction_pb2, prediction_pb2_grpc

MAX_CAPACITY_RANGE = timedelta(days=7)
MIN_SLOT_S = 60.0
# The coordinator computes the slots while every other call to it waits,
# about 4 ms a slot as measured on a 2-core machine. So 1,440 slots (one
# day by the minute) keep it busy for about 5 s, and 10,080 (a week by the
# minute) for longer than a client usually waits.
MAX_CAPACITY_SLOTS = 1440
# Slots are resolved to local dates, which end at 9999-12-31.
LATEST_CAPACITY_END = datetime(9999, 12, 30, tzinfo=UTC)
DEFAULT_SLOT_S = 900.0
# The coordinator turns a grade into the priority its grade rules give it,
# the same priority the customer shards give queued callers.
GRADE_NAME = {
    common_pb2.CUSTOMER_GRADE_UNSPECIFIED: "regular",
    common_pb2.CUSTOMER_GRADE_REGULAR: "regular",
    common_pb2.CUSTOMER_GRADE_COMPLAINT: "complaint",
    common_pb2.CUSTOMER_GRADE_VIP: "vip",
}


class PredictionServicer(prediction_pb2_grpc.PredictionServiceServicer):
    """Ask the coordinator's prediction model."""

    def __init__(self, actors):
        self._coordinator = actors.coordinator

    async def EstimateWait(self, request, context):
        async with translate_errors(context, "EstimateWait"):
            queue = require_text(request.queue, "queue", "billing")
            check_length("queue", queue, MAX_QUEUE_LENGTH)
            caller = request.WhichOneof("caller")
            if caller is None or (caller == "new_caller" and not request.new_caller):
                raise ValidationError(
                    "caller", None, "send ahead_count, or new_caller = true"
                )
            if caller == "ahead_count" and request.ahead_count < 0:
                raise ValidationError(
                    "ahead_count", request.ahead_count, "send 0 or more"
                )
            if request.grade not in GRADE_NAME:
                raise ValidationError("grade", request.grade, "send a CustomerGrade")
            ahead = request.ahead_count if caller == "ahead_count" else None
            estimate, now = await self._coordinator.estimate_wait.remote(
                queue, ahead, GRADE_NAME[request.grade]
            )
            return prediction_pb2.EstimateWaitResponse(
                wait=wait_to_proto(estimate), estimate_time=to_timestamp(now)
            )

    async def GetCapacity(self, request, context):
        async with translate_errors(context, "GetCapacity"):
            queue = require_text(request.queue, "queue", "billing")
            check_length("queue", queue, MAX_QUEUE_LENGTH)
            if not request.HasField("interval"):
                raise ValidationError("interval", None, "send start_time and end_time")
            start = from_timestamp(
                request.interval, "start_time", "interval.start_time"
            )
            end = from_timestamp(request.interval, "end_time", "interval.end_time")
            if start is None or end is None or end <= start:
                raise ValidationError(
                    "interval.end_time",
                    end.isoformat() if end else None,
                    "send a start_time and a later end_time",
                )
            if end - start > MAX_CAPACITY_RANGE:
                raise ValidationError(
                    "interval.end_time",
                    end.isoformat(),
                    "send a range of 7 days or less",
                )
            if end > LATEST_CAPACITY_END:
                raise ValidationError(
                    "interval.end_time",
                    end.isoformat(),
                    "send a time before 9999-12-30",
                )
            slot_s = DEFAULT_SLOT_S
            if request.HasField("slot_duration"):
                slot_s = duration_seconds(request.slot_duration, "slot_duration")
                if slot_s < MIN_SLOT_S:
                    raise ValidationError(
                        "slot_duration", f"{slot_s}s", "send at least 60 seconds"
                    )
            slot_count = math.ceil((end - start).total_seconds() / slot_s)
            if slot_count > MAX_CAPACITY_SLOTS:
                raise ValidationError(
                    "slot_duration",
                    f"{slot_s:g}s",
                    f"the range needs {slot_count} slots of it; send a longer "
                    f"slot or a shorter range, at most {MAX_CAPACITY_SLOTS} slots",
                )
            slots = await self._coordinator.capacity.remote(queue, start, end, slot_s)
            response = prediction_pb2.GetCapacityResponse()
            for slot in slots:
                message = response.slots.add(
                    agent_count=slot.agents,
                    inbound_agent_count=slot.inbound_agents,
                    callback_count=slot.callbacks,
                )
                message.interval.start_time.CopyFrom(to_timestamp(slot.start))
                message.interval.end_time.CopyFrom(to_timestamp(slot.end))
            return response

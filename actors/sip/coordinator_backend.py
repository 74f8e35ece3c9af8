"""An IVR backend over the Ray-hosted coordinator, for ``callsure serve``.

``CoordinatorIvrBackend`` gives the gateway's IVR (``callsure.actors.sip.
ivr``) the predicted wait from the coordinator's predictor, with the live
queue the CTI feed reports, and stores the caller's choice through the
path CreateCallback takes (``callsure.actors.batching.CreateBatcher``):
the customer's shard grades the customer, then the coordinator stores the
promise with a durable commit. The IVR reads the promised time back only
after that commit returned.

The IVR calls the backend on the gateway's backend thread, which may
block. The actor calls run on the event loop of the Ray actor hosting the
gateway, and the backend thread waits for their result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from callsure.actors.batching import CreateBatcher
from callsure.actors.customer_shard import shard_index
from callsure.actors.sip.backend import ivr_callback_request
from callsure.engine.exceptions import CallsureError, InvalidPhoneNumberError
from callsure.engine.phone import mask_number, parse_e164

logger = logging.getLogger(__name__)

# NOTE: the gateway has one backend thread. While the coordinator does not
# reply (a restart takes a few seconds), every IVR caller waits up to this
# long for a wait estimate or a promise, but outbound calls go on.
ACTOR_TIMEOUT_S = 10.0
# The grade the coordinator's grade rules give a caller it cannot look up.
DEFAULT_GRADE = "regular"


@dataclass
class EngineActors:
    """Handles of the coordinator and the customer shards, as the batcher uses them."""

    coordinator: object
    shards: list

    def shard_index(self, customer_id: str) -> int:
        return shard_index(customer_id, len(self.shards))


class CoordinatorIvrBackend:
    """Serve the IVR from the coordinator and the customer shards.

    Parameters
    ----------
    actors : EngineActors
        Handles of the coordinator and of every customer shard.
    loop : asyncio.AbstractEventLoop
        The running event loop on which the actor calls are made; never
        the thread that calls this backend.
    time_zone : str
        IANA zone in which callers key times and hear them read back.
    timeout_s : float
        Seconds to wait for the actors before the request fails.
    """

    def __init__(
        self,
        actors: EngineActors,
        loop: asyncio.AbstractEventLoop,
        time_zone: str = "UTC",
        timeout_s: float = ACTOR_TIMEOUT_S,
    ):
        self._actors = actors
        self._loop = loop
        self._batcher = CreateBatcher(actors)
        self.zone = ZoneInfo(time_zone)
        self.time_zone = time_zone
        self.timeout_s = timeout_s
        self._serial = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]

    def estimate_wait_s(self, caller: str, queue: str) -> float:
        """Estimate the mean wait of ``caller`` joining ``queue`` now, in seconds."""
        estimate = self._run(self._estimate(caller, queue), "wait estimate")
        return float(estimate.mean_s)

    async def _estimate(self, caller: str, queue: str):
        grade = await self._grade(caller)
        estimate, _ = await self._actors.coordinator.estimate_wait.remote(
            queue, None, grade
        )
        return estimate

    async def _grade(self, caller: str) -> str:
        try:
            number = parse_e164(caller, "calling_number")
        except InvalidPhoneNumberError:
            return DEFAULT_GRADE
        shard = self._actors.shards[self._actors.shard_index(number)]
        status = await shard.status.remote(number, datetime.now(UTC))
        return status.grade.value

    def request_callback(
        self,
        caller: str,
        queue: str,
        mode: str,
        requested_time: str | None,
        ivr_history: tuple[str, ...],
    ) -> datetime | None:
        """Store the promise; return its time in local time (``None`` for asap).

        The position in the queue is left to the coordinator, which counts
        the callers waiting in the live queue.

        Raises
        ------
        InvalidPhoneNumberError
            When the calling number is not E.164 (anonymous or national).
        InvalidTimeError
            When ``requested_time`` is not ``HHMM`` of a valid time of day.
        InfeasibleTimeError
            From the scheduler, for a time that cannot be kept.
        CallsureError
            When the actors fail or do not reply within ``timeout_s``.
        """
        request = ivr_callback_request(
            f"ivr-{self._session}-{next(self._serial)}",
            caller,
            queue,
            mode,
            requested_time,
            ivr_history,
            now=datetime.now(UTC),
            time_zone=self.time_zone,
        )
        callback, _, _ = self._run(self._batcher.create(request), "callback request")
        logger.info(
            "ivr: %s promise %s for %s in %s",
            mode,
            callback.callback_id,
            mask_number(caller),
            queue,
        )
        if mode == "asap" or callback.promised_time is None:
            return None
        return callback.promised_time.astimezone(self.zone)

    def _run(self, coroutine, operation: str):
        """Run ``coroutine`` on the actor's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(self.timeout_s)
        except CallsureError:
            raise
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise CallsureError(
                f"{operation} timed out after {self.timeout_s:g} s; the coordinator "
                "may be restarting, the caller can try again"
            ) from None
        except Exception as exc:  # noqa: BLE001 - Ray raises its own types
            raise CallsureError(f"{operation} failed: {exc}") from exc

"""The ``Coordinator`` actor: the callback scheduler and the prediction model.

Owns one ``CallbackScheduler`` over the durable store and the
``WaitPredictor`` it plans with, and the ``CampaignScheduler`` (the
promotion scheduler) over the same store; it is the only writer of the
store. Each dispatch step releases due callbacks first and then campaign
targets into the agents left free. When
the predictor is a ``LivePredictor`` (what ``callsure serve`` builds), the
coordinator also owns the ``ContactFeed`` that turns the CTI's contact
events and agent states into the predictor's queue events, as they are
reported (``record_contacts``, ``record_agent_state``). It is
a named, detached Ray actor (``COORDINATOR_NAME`` in the configured
namespace), so callers find it by name and it outlives the process that
created it when Ray runs as a cluster.

What survives a restart: everything that matters, because the scheduler
keeps no state in memory that the store lacks. On start the actor opens
the store, reloads the admin settings with the scheduler, and runs
``scheduler.recover``, so expired leases and overdue promises are handled
before the first release. Ray restarts the actor after a crash
(``max_restarts=-1``) and the constructor does the same reload. The
registered dialers do not survive: gateways register again
(``register_dialer`` is idempotent by name). The learned prediction state
(the live queues, the online learners and the open contacts) is not in the
store: it survives from a snapshot file beside the store
(``PREDICTION_SUFFIX``), rewritten at most every
``PREDICTION_SNAPSHOT_INTERVAL_S`` seconds after a change and on
``save_snapshot``. Events of the last interval before a crash are lost
from the learners; no promise depends on them.

Idempotency: ``create_callbacks`` and ``create_campaign`` are idempotent
per request id, ``add_campaign_targets`` per customer and campaign,
``start_campaign``, ``pause_campaign`` and ``remove_campaign_target`` when
repeated, and ``cancel_callback`` on a cancelled promise returns it.
``report_outcome`` is idempotent for the same outcome. ``start_dialing`` is
deliberately not, because a second claim must raise ``LeaseError``.
Queries have no effects.

Throughput: ``create_callbacks`` takes a batch and stores it with one
durable commit (group commit, ``CallbackStore.batch``). ``create_replies``
does the same for the gRPC server's CreateCallback: it takes the requests
as serialized ``CreateCallbackRequest`` messages and returns serialized
``CreateCallbackResponse`` messages, so only bytes cross Ray. Pickling the
engine's requests and promises cost 40-60 µs per create, summed over the
server and this actor (measured in one process on the shared 2-core
machine), and the server process also runs gRPC on one thread.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import random
from datetime import timedelta
from pathlib import Path

import ray

# Registers the pickling of engine errors sent back through Ray.
import callsure.actors.errors  # noqa: F401
from callsure.actors.agent_pool import POOL_NAME_PREFIX
from callsure.actors.contact_feed import ContactFeed
from callsure.actors.convert import (
    callback_request_from_proto,
    callback_to_proto,
    wait_to_proto,
)
from callsure.actors.gateway_api import Dialer
from callsure.actors.predictors import LivePredictor
from callsure.actors.snapshot import SnapshotFile
from callsure.engine.clock import SystemClock
from callsure.engine.customers import ContactKind
from callsure.engine.exceptions import CallsureError
from callsure.engine.policy import SchedulerPolicy
from callsure.engine.promotion import CampaignScheduler
from callsure.engine.scheduler import CallbackScheduler
from callsure.engine.store import open_store
from callsure.v1 import callback_pb2

logger = logging.getLogger(__name__)

# Capacity slots computed between two yields to the actor's other calls.
CAPACITY_CHUNK_SLOTS = 48

COORDINATOR_NAME = "callsure-coordinator"
# Jitter of the dispatch period, so coordinators of several deployments
# sharing a disk do not fsync in lockstep.
DISPATCH_JITTER = 0.1
PREDICTION_SUFFIX = ".prediction.msgpack"
PREDICTION_SNAPSHOT_INTERVAL_S = 5.0


@ray.remote(max_restarts=-1, max_task_retries=0)
class Coordinator:
    """A Ray actor hosting the scheduler; see the module docstring.

    Parameters
    ----------
    config : Config
        The whole configuration (it pickles); ``storage.path`` must be
        absolute, because Ray workers do not share the caller's directory.
    predictor_factory : callable
        ``factory(config) -> WaitPredictor``, called in the actor.
    """

    def __init__(self, config, predictor_factory):
        self._config = config
        path = Path(config.storage.path)
        self._store = open_store(path)
        self._predictor = predictor_factory(config)
        self._feed: ContactFeed | None = None
        self._prediction_snapshot: SnapshotFile | None = None
        if isinstance(self._predictor, LivePredictor):
            self._load_prediction(f"{path}{PREDICTION_SUFFIX}")
        self._clock = SystemClock()
        self._scheduler = CallbackScheduler(
            self._store,
            self._predictor,
            self._clock,
            SchedulerPolicy.from_config(config),
        )
        self._campaigns = CampaignScheduler(self._scheduler)
        report = self._scheduler.recover()
        logger.info("coordinator: store %s opened; %s", path, report)
        self._dialers: dict[str, Dialer] = {}
        self._pools: dict[str, object] = {}
        self._next_dialer = 0
        self._new_events: asyncio.Event | None = None
        self._dispatcher: asyncio.Task | None = None

    def _load_prediction(self, snapshot_path: str) -> None:
        self._feed = ContactFeed()
        self._prediction_snapshot = SnapshotFile(
            snapshot_path, self._prediction_state, PREDICTION_SNAPSHOT_INTERVAL_S
        )
        try:
            state = self._prediction_snapshot.load()
            if state is not None:
                self._predictor.restore(state["queues"])
                self._feed.restore(state["contacts"])
        except Exception:  # noqa: BLE001 - learning starts again from the priors
            logger.exception(
                "coordinator: prediction snapshot %s unreadable; starting from "
                "the priors",
                snapshot_path,
            )
            self._predictor.queues.clear()
            self._feed = ContactFeed()
            return
        if state is not None:
            logger.info(
                "coordinator: prediction state of %d queues and %d open contacts "
                "reloaded",
                len(self._predictor.queues),
                len(self._feed),
            )

    def _prediction_state(self) -> dict:
        return {"queues": self._predictor.to_state(), "contacts": self._feed.to_state()}

    def _events_stored(self) -> None:
        if self._new_events is not None:
            self._new_events.set()
            self._new_events = None

    # Lifecycle

    async def start(self) -> None:
        """Start the dispatch loop; idempotent."""
        self._ensure_dispatching()

    def _ensure_dispatching(self) -> None:
        # Ray runs the constructor outside the actor's event loop, so a
        # restarted actor starts its loop on the first message it handles.
        if self._dispatcher is None or self._dispatcher.done():
            if not self._pools:
                self._find_pools()
            self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch())
            logger.info(
                "coordinator: dispatching due callbacks every %.2f s",
                self._config.ray.dispatch_interval_s,
            )

    def _find_pools(self) -> None:
        """Find running agent pools by name, as after a restart of this actor."""
        try:
            names = ray.util.list_named_actors()
            for name in names:
                if name.startswith(POOL_NAME_PREFIX):
                    group = name.removeprefix(POOL_NAME_PREFIX)
                    self._pools[group] = ray.get_actor(name)
        except Exception:  # noqa: BLE001 - pools register again when created
            logger.exception("coordinator: looking up agent pools failed")
        if self._pools:
            logger.info("coordinator: found agent pools %s", sorted(self._pools))

    async def close(self) -> None:
        """Stop the dispatch loop and close the store."""
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        self._store.close()
        logger.info("coordinator: stopped")

    async def ping(self) -> int:
        """Return the actor's process id; a new id means Ray restarted it."""
        self._ensure_dispatching()
        return os.getpid()

    # Callbacks

    async def create_callbacks(self, requests: list) -> list:
        """Create promises for ``requests`` with one durable commit.

        Returns
        -------
        list
            Per request, in order: ``(callback, estimate, replayed)``, or the
            exception the engine raised for that request alone.
        """
        return self._create_batch(requests, _engine_result, lambda estimate: estimate)

    async def create_replies(self, items: list) -> list:
        """Create promises for serialized API requests with one durable commit.

        Parameters
        ----------
        items : list
            ``(request, grading)`` pairs: ``request`` a serialized
            ``CreateCallbackRequest`` the server checked, ``grading`` the
            customer's ``(grade, priority, dedicated_agent_id)`` from its
            shard.

        Returns
        -------
        list
            Per item, in order: a serialized ``CreateCallbackResponse``, or
            the exception the engine raised for that request alone.
        """
        requests = []
        for raw, grading in items:
            message = callback_pb2.CreateCallbackRequest.FromString(raw)
            try:
                requests.append(callback_request_from_proto(message, grading))
            except CallsureError as exc:
                requests.append(exc)
        return self._create_batch(requests, _api_reply, _api_wait)

    def _create_batch(self, requests: list, result_of, wait_of) -> list:
        """Create every request inside one store batch.

        ``result_of(callback, wait, replayed)`` makes each result, with
        ``wait = wait_of(estimate)`` computed once per queue, priority and
        position: the batch is stored within milliseconds, well inside the
        model's resolution.
        """
        self._ensure_dispatching()
        results = []
        places: dict[tuple[str, int], int] = {}
        waits: dict[tuple[str, int, int], object] = {}
        created = replayed_count = 0
        with self._store.batch():
            for request in requests:
                if isinstance(request, CallsureError):
                    results.append(request)
                    continue
                try:
                    request = self._with_position(request, places)
                    callback, replayed = self._scheduler.create_or_replay(request)
                except CallsureError as exc:
                    results.append(exc)
                    continue
                except Exception:  # noqa: BLE001 - the batch's other requests go on
                    # The store rolled back this request's writes, if any.
                    logger.exception("create of request %s failed", request.request_id)
                    results.append(
                        CallsureError(
                            f"request {request.request_id!r} failed inside the "
                            "engine; see the server log"
                        )
                    )
                    continue
                key = (callback.queue, callback.priority, request.queue_position)
                if key not in waits:
                    waits[key] = wait_of(self._estimate_for(*key))
                results.append(result_of(callback, waits[key], replayed))
                created += 1
                replayed_count += replayed
        self._events_stored()
        logger.debug(
            "coordinator: %d requests in one commit, %d stored, %d of them replayed",
            len(requests),
            created,
            replayed_count,
        )
        return results

    def _with_position(self, request, places: dict):
        """Fill an unset ``queue_position`` (0) with the callers waiting now.

        proto3 cannot tell 0 from unset, and a caller at the head of the
        live queue has 0 ahead either way. ``places`` keeps the count per
        queue and priority for the rest of the batch.

        NOTE: a caller still waiting in the switch's queue (QUEUED reported,
        no ABANDONED yet) counts itself, so its position is one too high
        until the switch reports that it left.
        """
        if request.queue_position or self._feed is None:
            return request
        key = (request.queue, request.priority)
        ahead = places.get(key)
        if ahead is None:
            ahead = places[key] = self._predictor.ahead(
                request.queue, self._clock.now(), request.priority
            )
        if not ahead:
            return request
        return dataclasses.replace(request, queue_position=ahead)

    def _estimate_for(self, queue: str, priority: int, ahead: int):
        """Estimate the wait of a caller with ``ahead`` before it; ``None`` on error."""
        try:
            return self._predictor.estimate_wait(
                queue, ahead, self._clock.now(), priority=priority
            )
        except CallsureError:
            logger.exception("queue %s: wait estimate failed", queue)
            return None

    async def get_callback(self, callback_id: str):
        return self._scheduler.get(callback_id)

    async def list_callbacks(self, *, state, customer_id, queue, page_size, page_token):
        return self._scheduler.list(
            state=state,
            customer_id=customer_id,
            queue=queue,
            page_size=page_size,
            page_token=page_token,
        )

    async def cancel_callback(self, callback_id: str, reason: str):
        callback = self._scheduler.cancel(callback_id, reason)
        self._events_stored()
        return callback

    async def customer_reached_agent(self, customer_id: str, queue, when) -> list:
        dropped = self._scheduler.customer_reached_agent(customer_id, queue, when)
        dropped += self._campaigns.customer_reached_agent(customer_id, when)
        if dropped:
            self._events_stored()
        return dropped

    # Campaigns

    async def create_campaign(self, request) -> tuple:
        """Store a draft campaign; return ``(campaign, replayed)``."""
        result = self._campaigns.create(request)
        self._events_stored()
        return result

    async def add_campaign_targets(self, campaign_id: str, targets: list):
        """Store targets in one transaction; return ``AddedTargets``."""
        added = self._campaigns.add_targets(campaign_id, targets)
        self._events_stored()
        return added

    async def start_campaign(self, campaign_id: str):
        campaign = self._campaigns.start(campaign_id)
        self._events_stored()
        return campaign

    async def pause_campaign(self, campaign_id: str):
        campaign = self._campaigns.pause(campaign_id)
        self._events_stored()
        return campaign

    async def get_campaign(self, campaign_id: str):
        """Return the ``CampaignSummary`` of a campaign."""
        return self._campaigns.summary(campaign_id)

    async def list_campaigns(self, *, state, page_size: int, page_token: str):
        return self._campaigns.list(
            state=state, page_size=page_size, page_token=page_token
        )

    async def list_campaign_targets(
        self, campaign_id: str, *, state, page_size: int, page_token: str
    ) -> tuple:
        return self._campaigns.list_targets(
            campaign_id, state=state, page_size=page_size, page_token=page_token
        )

    async def remove_campaign_target(
        self, campaign_id: str, customer_id: str, reason: str
    ):
        target = self._campaigns.remove_target(campaign_id, customer_id, reason)
        self._events_stored()
        return target

    # Events

    async def read_events(self, after_seq: int, limit: int) -> list:
        return self._scheduler.read_events(after_seq, limit)

    async def wait_for_events(self, after_seq: int, timeout_s: float) -> None:
        """Return when an event after ``after_seq`` may exist, or on timeout."""
        if self._store.read_events(after_seq, 1):
            return
        if self._new_events is None:
            self._new_events = asyncio.Event()
        waiter = self._new_events
        try:
            await asyncio.wait_for(waiter.wait(), timeout_s)
        except TimeoutError:
            pass

    # Prediction

    async def estimate_wait(self, queue: str, ahead, grade: str):
        """Estimate the wait of a caller of ``grade`` with ``ahead`` before it;
        ``ahead=None`` is a caller joining now, behind everyone waiting.

        Returns
        -------
        tuple
            The ``WaitEstimate`` and the time it was made.
        """
        now = self._clock.now()
        priority = self._scheduler.grade_rules.priorities.get(grade, 0)
        if ahead is None:
            ahead = 0
            if self._feed is not None:
                ahead = self._predictor.ahead(queue, now, priority)
        return self._predictor.estimate_wait(queue, ahead, now, priority=priority), now

    async def record_contacts(self, items: list) -> list:
        """Feed contact events in order to the predictor; an ANSWERED event
        of a known customer drops the customer's open promises.

        ``items`` contains ``(event, priority)`` pairs, the priority the
        customer's from its shard (0 when unknown). Returns the dropped
        callbacks of all the events, in order.
        """
        dropped = []
        # One durable commit for the whole list: while a campaign is active
        # every ANSWERED event also records the customer as reached.
        with self._store.batch():
            for event, priority in items:
                dropped.extend(self._record_contact(event, priority))
        if dropped:
            self._events_stored()
        return dropped

    def _record_contact(self, event, priority: int) -> list:
        now = self._clock.now()
        if self._feed is not None:
            # A clock ahead of this one must not push the queues' time into
            # the future, where every later event would be clamped.
            seconds = min(event.time, now).timestamp()
            pairs = self._feed.contact_events(
                event.call_id,
                event.kind,
                seconds,
                queue=event.queue,
                agent=event.agent_id or "",
                priority=priority,
            )
            for queue, queue_event in pairs:
                self._predictor.observe(queue, queue_event)
            self._prediction_snapshot.changed()
        if event.kind is not ContactKind.ANSWERED or not event.customer_id:
            return []
        dropped = self._scheduler.customer_reached_agent(
            event.customer_id, event.queue or None, event.time
        )
        return dropped + self._campaigns.customer_reached_agent(
            event.customer_id, event.time
        )

    async def record_agent_state(self, group: str, agent_id: str, state, when):
        """Feed an agent's current state in ``group`` (its queue) to the predictor."""
        if self._feed is None:
            return
        seconds = min(when, self._clock.now()).timestamp()
        self._predictor.observe(group, self._feed.agent_event(agent_id, state, seconds))
        self._prediction_snapshot.changed()

    async def save_snapshot(self) -> None:
        """Write the prediction snapshot now; called before a clean stop."""
        if self._prediction_snapshot is not None:
            await self._prediction_snapshot.save_now()

    async def capacity(self, queue: str, start, end, interval_s: float) -> list:
        """Return the predictor's capacity slots of ``queue`` in ``[start, end)``.

        The slots are computed ``CAPACITY_CHUNK_SLOTS`` at a time, letting
        the actor serve other calls in between: a day in 1-minute slots
        took about 0.5 s in one measurement, and every CreateCallback
        waited as long.
        """
        step = timedelta(seconds=interval_s)
        slots = []
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(chunk_start + step * CAPACITY_CHUNK_SLOTS, end)
            slots.extend(
                self._predictor.capacity(queue, chunk_start, chunk_end, interval_s)
            )
            chunk_start = chunk_end
            await asyncio.sleep(0)
        return slots

    # Administration

    async def set_calendar(self, queue: str, calendar) -> None:
        self._scheduler.set_calendar(queue, calendar)
        self._events_stored()

    async def set_retry_policy(self, retry) -> None:
        self._scheduler.set_retry_policy(retry)
        self._events_stored()

    async def set_capacity_limits(self, limits) -> None:
        self._scheduler.set_capacity_limits(limits)
        self._events_stored()

    async def set_grade_rules(self, rules) -> None:
        self._scheduler.set_grade_rules(rules)
        self._events_stored()

    async def set_repeat_caller_rule(self, rule) -> None:
        self._scheduler.set_repeat_caller_rule(rule)
        self._events_stored()

    async def customer_rules(self) -> tuple:
        """Return the stored grade rules and repeat-caller rule, for the shards."""
        return self._scheduler.grade_rules, self._scheduler.repeat_caller_rule

    async def calendar(self, queue: str) -> tuple:
        """Return the calendar in force for ``queue`` and the name it is
        stored under (``queue``, or ``"*"`` when the default applies)."""
        return self._scheduler.calendar_in_force(queue)

    async def retry_policy(self):
        return self._scheduler.policy.retry

    async def capacity_limits(self):
        return self._scheduler.policy.capacity

    # Dialing

    async def register_pool(self, group: str, pool) -> None:
        """Take the agent pool of ``group`` into account when releasing."""
        self._pools[group] = pool

    async def register_dialer(self, name: str, dialer) -> None:
        """Add or replace the dialer ``name`` (a ``Dialer`` or an actor handle)."""
        self._ensure_dispatching()
        self._dialers[name] = dialer
        logger.info("coordinator: dialer %s registered", name)

    async def unregister_dialer(self, name: str) -> None:
        if self._dialers.pop(name, None) is not None:
            logger.info("coordinator: dialer %s unregistered", name)

    async def start_dialing(self, attempt_id: str, owner: str):
        attempt = self._scheduler.start_dialing(attempt_id, owner)
        self._events_stored()
        return attempt

    async def renew_lease(self, attempt_id: str, owner: str):
        return self._scheduler.renew_lease(attempt_id, owner)

    async def report_outcome(self, attempt_id: str, outcome, **details):
        result = self._campaigns.report_outcome(attempt_id, outcome, **details)
        self._events_stored()
        return result

    async def _dispatch(self) -> None:
        interval_s = self._config.ray.dispatch_interval_s
        while True:
            jitter = random.uniform(1 - DISPATCH_JITTER, 1 + DISPATCH_JITTER)
            await asyncio.sleep(interval_s * jitter)
            try:
                await self._dispatch_once()
            except Exception:  # noqa: BLE001 - the loop must not die
                logger.exception("coordinator: dispatch failed; retrying")

    async def _dispatch_once(self) -> None:
        if not self._dialers:
            # Without a gateway nothing can dial; promises stay pending
            # rather than being released into a void, and still expire, and
            # campaigns still finish, at their times.
            changed = self._scheduler.housekeep()
            if changed + self._campaigns.finish_ended():
                self._events_stored()
            return
        free_agents, ready_agents = await self._availability()
        orders = self._scheduler.due(free_agents=free_agents, ready_agents=ready_agents)
        orders += self._campaigns.due(
            free_agents=free_agents,
            ready_agents=ready_agents,
            waiting=self._waiting(),
            released=orders,
        )
        if not orders:
            return
        self._events_stored()
        for order in orders:
            await self._send(order)

    def _waiting(self) -> dict[str, int] | None:
        """Inbound callers waiting per queue, from the contact feed; ``None``
        without one."""
        if self._feed is None:
            return None
        now = self._clock.now()
        return {
            queue: self._predictor.ahead(queue, now) for queue in self._predictor.queues
        }

    async def _availability(self) -> tuple[dict | None, frozenset | None]:
        """Free agents per group and ready agents, from the agent pools."""
        if not self._pools:
            # No CTI feed yet: the predictor's capacity alone limits releases.
            return None, None
        now = self._clock.now()
        groups = list(self._pools)
        replies = await asyncio.gather(
            *(self._pools[group].availability.remote(now) for group in groups)
        )
        pairs = zip(groups, replies, strict=True)
        free_agents = {group: free for group, (free, _) in pairs}
        ready_agents = frozenset().union(*(ready for _, ready in replies))
        return free_agents, ready_agents

    async def _send(self, order) -> None:
        names = list(self._dialers)
        for offset in range(len(names)):
            name = names[(self._next_dialer + offset) % len(names)]
            dialer = self._dialers[name]
            try:
                accepted = await _call(dialer.dial, order)
            except Exception:  # noqa: BLE001 - try the next gateway
                logger.exception(
                    "callback %s: dialer %s failed on attempt %s",
                    order.callback_id,
                    name,
                    order.attempt_id,
                )
                continue
            if accepted:
                self._next_dialer = (self._next_dialer + offset + 1) % len(names)
                return
        logger.warning(
            "callback %s: no dialer took attempt %s; released again later",
            order.callback_id,
            order.attempt_id,
        )
        self._scheduler.report_outcome(
            order.attempt_id, "not_dialed", detail="no gateway had a free line"
        )
        self._events_stored()


def _engine_result(callback, estimate, replayed: bool) -> tuple:
    return callback, estimate, replayed


def _api_wait(estimate) -> object:
    return None if estimate is None else wait_to_proto(estimate)


def _api_reply(callback, expected_wait, replayed: bool) -> bytes:
    reply = callback_pb2.CreateCallbackResponse(
        callback=callback_to_proto(callback, expected_wait=expected_wait),
        replayed=replayed,
    )
    return reply.SerializeToString()


async def _call(method, *args):
    """Call a ``Dialer`` method on a local object or on a Ray actor handle."""
    remote = getattr(method, "remote", None)
    if remote is not None:
        return await remote(*args)
    return await method(*args)

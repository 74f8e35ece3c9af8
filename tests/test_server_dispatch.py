"""The coordinator on a real local Ray: dialing through a Dialer, restarts."""

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray  # noqa: E402
from ray import cloudpickle  # noqa: E402
from serve_support import start_local_ray  # noqa: E402

from callsure.actors.agent_pool import POOL_NAME_PREFIX, AgentPool  # noqa: E402
from callsure.actors.coordinator import Coordinator  # noqa: E402
from callsure.actors.gateway_api import Dialer  # noqa: E402
from callsure.actors.predictors import build_predictor  # noqa: E402
from callsure.actors.runtime import gcs_host_problem  # noqa: E402
from callsure.actors.serve_cli import check_ray_address  # noqa: E402
from callsure.engine.agents import AgentState  # noqa: E402
from callsure.engine.callbacks import CallbackRequest, CallbackState  # noqa: E402
from callsure.engine.config import load_config  # noqa: E402
from callsure.engine.exceptions import NotFoundError  # noqa: E402
from callsure.v1 import callback_pb2, common_pb2  # noqa: E402

pytestmark = pytest.mark.slow

# Workers cannot import this test module, so its classes travel by value.
cloudpickle.register_pickle_by_value(sys.modules[__name__])

WAIT_S = 30.0
# A regular customer's grading, as a customer shard returns it.
GRADED = ("regular", 0, None)


@ray.remote
class AnsweringGateway(Dialer):
    """A dialer whose every call is answered by a person and connected."""

    def __init__(self, coordinator, name):
        self.coordinator = coordinator
        self.name = name
        self.keys = []

    async def dial(self, order):
        if order.idempotency_key in self.keys:
            return True
        self.keys.append(order.idempotency_key)
        await self.coordinator.start_dialing.remote(order.attempt_id, self.name)
        await self.coordinator.report_outcome.remote(order.attempt_id, "connected")
        return True

    async def dialed_keys(self):
        return list(self.keys)


@pytest.fixture(scope="module")
def cluster():
    folder = start_local_ray("callsure-test")
    yield folder
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def coordinator(cluster):
    config = load_config(None).replace(
        storage={"path": str(cluster / "callsure.db")},
        ray={"dispatch_interval_s": 0.1},
    )
    handle = Coordinator.options(name="coordinator", max_concurrency=100).remote(
        config, build_predictor
    )
    ray.get(handle.start.remote())
    return handle


def request(customer_id, queue="billing"):
    return CallbackRequest(
        request_id=uuid.uuid4().hex,
        customer_id=customer_id,
        queue=queue,
        phone_number="+14155550100",
    )


async def wait_for_state(coordinator, callback_id, state):
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while True:
        callback = await coordinator.get_callback.remote(callback_id)
        if callback.state is state or asyncio.get_running_loop().time() > deadline:
            return callback
        await asyncio.sleep(0.1)


def dial_through_gateway(coordinator, customer_id):
    """Create a callback with a gateway registered; wait until it completes."""

    async def scenario():
        gateway = AnsweringGateway.remote(coordinator, "gateway-1")
        await coordinator.register_dialer.remote("gateway-1", gateway)
        [result] = await coordinator.create_callbacks.remote([request(customer_id)])
        callback = result[0]
        done = await wait_for_state(
            coordinator, callback.callback_id, CallbackState.COMPLETED
        )
        await coordinator.unregister_dialer.remote("gateway-1")
        keys = await gateway.dialed_keys.remote()
        events = await coordinator.read_events.remote(0, 1000)
        return callback, done, keys, events

    return asyncio.run(scenario())


def test_registered_dialer_completes_callback(coordinator):
    callback, done, keys, events = dial_through_gateway(coordinator, "c-dial")
    kinds = [e.kind for e in events if e.callback_id == callback.callback_id]
    assert done.state is CallbackState.COMPLETED
    assert keys == [f"{callback.callback_id}/1"]
    assert kinds == [
        "callback.created",
        "callback.released",
        "attempt.dialing",
        "attempt.outcome",
        "callback.completed",
    ]


def test_without_dialer_callback_stays_pending(coordinator):
    [result] = ray.get(coordinator.create_callbacks.remote([request("c-idle")]))
    callback = result[0]
    ray.get(coordinator.ping.remote())
    later = ray.get(coordinator.get_callback.remote(callback.callback_id))
    assert later.state is CallbackState.PENDING


def test_error_for_one_request_spares_batch(coordinator):
    bad = request("c-bad")
    bad = CallbackRequest(**{**bad.__dict__, "phone_number": "12"})
    good, failed = ray.get(
        coordinator.create_callbacks.remote([request("c-good"), bad])
    )
    assert good[0].state is CallbackState.PENDING
    assert failed.field == "phone_number"


def api_request(customer_id, phone="+14155550100", request_id=None):
    callback = callback_pb2.Callback(
        customer_id=customer_id, queue="billing", phone_number=phone
    )
    message = callback_pb2.CreateCallbackRequest(
        callback=callback, request_id=request_id or uuid.uuid4().hex
    )
    return message.SerializeToString()


def test_replies_serialized_with_grading(coordinator):
    raw = api_request("c-api-vip")
    bad = api_request("c-api-bad", phone="12")
    first, failed = ray.get(
        coordinator.create_replies.remote([(raw, ("vip", 5, "a-7")), (bad, GRADED)])
    )
    [again] = ray.get(coordinator.create_replies.remote([(raw, ("vip", 5, "a-7"))]))
    reply = callback_pb2.CreateCallbackResponse.FromString(first)
    replay = callback_pb2.CreateCallbackResponse.FromString(again)
    assert reply.callback.grade == common_pb2.CUSTOMER_GRADE_VIP
    assert reply.callback.dedicated_agent == "agents/a-7"
    assert reply.callback.expected_wait.quantiles
    assert not reply.replayed
    assert replay.replayed
    assert replay.callback.name == reply.callback.name
    assert failed.field == "phone_number"


def restart(coordinator):
    """Kill the coordinator's process and wait until Ray has restarted it."""
    old_process = ray.get(coordinator.ping.remote())
    ray.kill(coordinator, no_restart=False)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if ray.get(coordinator.ping.remote()) != old_process:
                return True
        except (ray.exceptions.ActorUnavailableError, ray.exceptions.ActorDiedError):
            pass
        time.sleep(0.1)
    return False


def test_coordinator_reloads_after_crash(coordinator):
    [result] = ray.get(coordinator.create_callbacks.remote([request("c-crash")]))
    callback_id = result[0].callback_id
    assert restart(coordinator)
    reloaded = ray.get(coordinator.get_callback.remote(callback_id))
    assert reloaded.callback_id == callback_id
    with pytest.raises(NotFoundError):
        ray.get(coordinator.get_callback.remote("cb_unknown"))


def test_restarted_coordinator_dispatches(coordinator):
    callback, done, keys, _ = dial_through_gateway(coordinator, "c-after-crash")
    assert done.state is CallbackState.COMPLETED
    assert f"{callback.callback_id}/1" in keys


def test_agent_pool_gates_release(cluster, coordinator):
    # A queue of its own: the releases of the other tests in this module
    # count against the spare capacity of the billing queue's interval,
    # which an ASAP callback needs.
    pool = AgentPool.options(name=POOL_NAME_PREFIX + "gated").remote(
        "gated", str(cluster / "pool-gated.msgpack")
    )
    now = datetime.now(UTC)
    ray.get(pool.update_agent.remote("a1", frozenset(), frozenset(), True, now))
    # A restarted coordinator finds the pool by name.
    assert restart(coordinator)

    async def scenario():
        gateway = AnsweringGateway.remote(coordinator, "gateway-2")
        await coordinator.register_dialer.remote("gateway-2", gateway)
        [result] = await coordinator.create_callbacks.remote(
            [request("c-gated", queue="gated")]
        )
        callback_id = result[0].callback_id
        await asyncio.sleep(1.0)
        held = await coordinator.get_callback.remote(callback_id)
        await pool.set_state.remote("a1", AgentState.READY, datetime.now(UTC))
        done = await wait_for_state(coordinator, callback_id, CallbackState.COMPLETED)
        await coordinator.unregister_dialer.remote("gateway-2")
        return held, done

    held, done = asyncio.run(scenario())
    assert held.state is CallbackState.PENDING
    assert done.state is CallbackState.COMPLETED


def descendants(pid: int) -> set[int]:
    """Ids of the processes below ``pid``, read from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The parent id follows the command name, which may contain spaces.
                parent = int(stat.read().rpartition(")")[2].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def test_ray_listens_only_on_loopback(cluster, coordinator):
    # Workers rename their process title, so the tree, not the command
    # line, finds them: the coordinator's worker is among them.
    ours = descendants(os.getpid()) | {os.getpid()}
    listing = subprocess.run(
        ["ss", "-ltnpH"], capture_output=True, text=True, check=True
    ).stdout
    listeners = [
        line.split()[3]
        for line in listing.splitlines()
        if any(f"pid={pid}," in line for pid in ours)
    ]
    assert len(listeners) >= 3  # the GCS, the raylet and the workers
    for local in listeners:
        host = local.rpartition(":")[0]
        assert host in {"127.0.0.1", "[::ffff:127.0.0.1]", "[::1]"}, local


def test_gcs_off_node_address_named():
    # The pure check: check_gcs_host would also stop this module's Ray.
    assert gcs_host_problem("127.0.0.1:6379", "127.0.0.1") is None
    problem = gcs_host_problem("192.0.2.2:6379", "127.0.0.1")
    assert "listened on 192.0.2.2" in problem
    assert "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0" in problem


def test_running_gcs_passes_address_check(cluster):
    check_ray_address(ray.get_runtime_context().gcs_address, "--ray-address")


def test_engine_error_crosses_ray_intact(cluster):
    pool = AgentPool.options(name=POOL_NAME_PREFIX + "errors").remote(
        "errors", str(cluster / "pool-errors.msgpack")
    )
    now = datetime.now(UTC)
    with pytest.raises(NotFoundError) as raised:
        ray.get(
            pool.update_agent.remote("nobody", frozenset(), frozenset(), False, now)
        )
    assert raised.value.kind == "agent"
    assert raised.value.resource_id == "nobody"


def test_capacity_chunks_join_seamlessly(coordinator):
    start = datetime(2026, 12, 7, 9, 0, 0, 500, tzinfo=UTC)
    end = start + timedelta(minutes=100, seconds=30)
    slots = ray.get(coordinator.capacity.remote("billing", start, end, 60.0))
    assert len(slots) == 101  # 100 whole minutes and the last 30 s
    assert slots[0].start == start
    assert slots[-1].end == end
    assert all(a.end == b.start for a, b in zip(slots, slots[1:], strict=False))

"""The gateway as a Ray actor, dialing for the real coordinator on a local Ray.

The coordinator (``callsure.actors.coordinator``) releases a promise and
offers it to the registered ``CallGatewayActor``, which claims the lease,
dials a pjsua2 test phone, classifies the answer and reports the outcome.
After Ray restarts the coordinator, the gateway registers with it again.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid

import pytest

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
import ray  # noqa: E402
from serve_support import start_local_ray  # noqa: E402
from sip_peers import PhoneBank, concatenate_wavs  # noqa: E402
from test_sip_gateway import corpus_file  # noqa: E402

from callsure.actors.coordinator import Coordinator  # noqa: E402
from callsure.actors.predictors import build_predictor  # noqa: E402
from callsure.actors.sip.actor import CallGatewayActor  # noqa: E402
from callsure.engine.callbacks import (  # noqa: E402
    CallbackRequest,
    CallbackState,
    Outcome,
)
from callsure.engine.config import load_config  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

WAIT_S = 40.0
NAMESPACE = "callsure-sip-test"


@pytest.fixture(scope="module")
def phones(amd_corpus, tmp_path_factory):
    folder = tmp_path_factory.mktemp("phones")
    talking = concatenate_wavs(
        [corpus_file(amd_corpus, "HUMAN")] * 2, folder / "talking.wav"
    )
    behaviours = {
        "+15553000001": {
            "action": "answer",
            "delay_s": 0.3,
            "play": str(talking),
            "hangup_after_s": 8.0,
        },
        "+15553000486": {"action": "reject", "code": 486},
        "billing": {"action": "answer", "delay_s": 0.2},
    }
    with PhoneBank(behaviours, name="phones") as bank:
        yield bank


@pytest.fixture(scope="module")
def stack(phones):
    folder = start_local_ray(NAMESPACE)
    config = load_config(None).replace(
        storage={"path": str(folder / "callsure.db")},
        ray={"dispatch_interval_s": 0.1, "namespace": NAMESPACE},
        sip={
            "endpoint_processes": 1,
            "customer_uri_template": phones.uri_template("number"),
            "agent_uri_template": phones.uri_template("agent"),
        },
    )
    coordinator = Coordinator.options(name="coordinator", max_concurrency=100).remote(
        config, build_predictor
    )
    ray.get(coordinator.start.remote())
    gateway = CallGatewayActor.options(max_concurrency=100).remote(
        config, "gateway-1", "coordinator"
    )
    ray.get(gateway.start.remote(), timeout=60)
    yield coordinator, gateway
    ray.get(gateway.stop.remote(), timeout=60)
    ray.shutdown()
    shutil.rmtree(folder, ignore_errors=True)


def run_callback(coordinator, number: str, done_kind: str):
    """Create a callback and wait for its first journal event of ``done_kind``."""

    async def scenario():
        request = CallbackRequest(
            request_id=uuid.uuid4().hex,
            customer_id=f"customer-{number}",
            queue="billing",
            phone_number=number,
        )
        [result] = await coordinator.create_callbacks.remote([request])
        callback_id = result[0].callback_id
        deadline = asyncio.get_running_loop().time() + WAIT_S
        while True:
            events = await coordinator.read_events.remote(0, 1000)
            mine = [e for e in events if e.callback_id == callback_id]
            done = any(e.kind == done_kind for e in mine)
            if done or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.2)
        callback = await coordinator.get_callback.remote(callback_id)
        return callback, mine

    return asyncio.run(scenario())


def attempt_outcomes(events) -> list[str]:
    return [
        e.payload["attempt"]["outcome"] for e in events if e.kind == "attempt.outcome"
    ]


def test_coordinator_dials_through_gateway_actor(stack):
    coordinator, _ = stack
    callback, events = run_callback(coordinator, "+15553000001", "callback.completed")
    assert callback.state is CallbackState.COMPLETED
    assert attempt_outcomes(events) == [Outcome.CONNECTED.value]


def test_busy_reported_to_coordinator(stack):
    coordinator, _ = stack
    callback, events = run_callback(
        coordinator, "+15553000486", "callback.retry_scheduled"
    )
    assert attempt_outcomes(events) == [Outcome.BUSY.value]
    assert callback.state is CallbackState.PENDING


def test_registered_again_after_coordinator_restart(stack):
    coordinator, _ = stack
    first_pid = ray.get(coordinator.ping.remote(), timeout=30)

    ray.kill(coordinator, no_restart=False)
    restarted_pid(coordinator, first_pid)
    callback, events = run_callback(coordinator, "+15553000001", "callback.completed")

    assert callback.state is CallbackState.COMPLETED
    assert attempt_outcomes(events) == [Outcome.CONNECTED.value]


def restarted_pid(coordinator, first_pid: int) -> int:
    """Wait until the coordinator replies from a new process; return its pid."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            pid = ray.get(coordinator.ping.remote(), timeout=30)
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError):
            pid = first_pid
        if pid != first_pid:
            return pid
        time.sleep(0.5)
    raise TimeoutError(f"coordinator not restarted within {WAIT_S:g} s")

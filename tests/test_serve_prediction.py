"""`callsure serve` learning from the live feed: contact and agent events in,
EstimateWait and CreateCallback waits out, kept across a restart, and a
fitted model file loaded."""

import shutil
import uuid

import grpc
import pytest
from serve_support import ServeProcess, fit_first_days, private_folder

from callsure.v1 import (
    agent_pb2,
    agent_pb2_grpc,
    callback_pb2,
    callback_pb2_grpc,
    contact_pb2,
    contact_pb2_grpc,
    prediction_pb2,
    prediction_pb2_grpc,
)

pytestmark = pytest.mark.slow

TOKEN = "test-token-" + uuid.uuid4().hex
METADATA = (("authorization", f"Bearer {TOKEN}"),)
CALL_TIMEOUT_S = 30.0
QUEUE = "support"


def set_agent(channel, agent_id, state):
    stub = agent_pb2_grpc.AgentServiceStub(channel)
    agent = agent_pb2.Agent(name=f"agents/{agent_id}", group=QUEUE)
    stub.UpdateAgent(
        agent_pb2.UpdateAgentRequest(agent=agent, allow_missing=True),
        metadata=METADATA,
        timeout=CALL_TIMEOUT_S,
    )
    stub.ReportAgentState(
        agent_pb2.ReportAgentStateRequest(agent=f"agents/{agent_id}", state=state),
        metadata=METADATA,
        timeout=CALL_TIMEOUT_S,
    )


def report(channel, contact_id, kind, **fields):
    event = contact_pb2.ContactEvent(
        contact_id=contact_id, type=kind, queue=QUEUE, **fields
    )
    event.event_time.GetCurrentTime()
    contact_pb2_grpc.ContactServiceStub(channel).ReportContactEvent(
        contact_pb2.ReportContactEventRequest(event=event),
        metadata=METADATA,
        timeout=CALL_TIMEOUT_S,
    )


def new_caller_wait(channel):
    reply = prediction_pb2_grpc.PredictionServiceStub(channel).EstimateWait(
        prediction_pb2.EstimateWaitRequest(queue=QUEUE, new_caller=True),
        metadata=METADATA,
        timeout=CALL_TIMEOUT_S,
    )
    return reply.wait


def mean_s(wait):
    return wait.mean_wait.ToTimedelta().total_seconds()


def quantiles(wait):
    return {q.probability: q.wait.ToTimedelta().total_seconds() for q in wait.quantiles}


def capacity_slots(channel):
    request = prediction_pb2.GetCapacityRequest(queue=QUEUE)
    request.interval.start_time.GetCurrentTime()
    request.interval.end_time.seconds = request.interval.start_time.seconds + 3600
    request.slot_duration.seconds = 900
    reply = prediction_pb2_grpc.PredictionServiceStub(channel).GetCapacity(
        request, metadata=METADATA, timeout=CALL_TIMEOUT_S
    )
    return list(reply.slots)


def create_wait(channel, customer_id):
    callback = callback_pb2.Callback(
        customer_id=customer_id, phone_number="+14155550100", queue=QUEUE
    )
    reply = callback_pb2_grpc.CallbackServiceStub(channel).CreateCallback(
        callback_pb2.CreateCallbackRequest(
            callback=callback, request_id=uuid.uuid4().hex
        ),
        metadata=METADATA,
        timeout=CALL_TIMEOUT_S,
    )
    return reply.callback.expected_wait


@pytest.fixture(scope="module")
def runs(bank_log):
    """Feed a first server, stop it, restart it with a model file."""
    folder = private_folder()
    model_path = fit_first_days(bank_log, folder)
    waits = {}
    try:
        first = ServeProcess(folder, token=TOKEN)
        with grpc.insecure_channel(first.address) as channel:
            for agent_id in ("ann", "bob", "cid"):
                set_agent(channel, agent_id, agent_pb2.AGENT_STATE_READY)
            waits["empty"] = new_caller_wait(channel)
            for index in range(5):
                report(channel, f"c-{index}", contact_pb2.CONTACT_EVENT_TYPE_QUEUED)
            waits["five_queued"] = new_caller_wait(channel)
            set_agent(channel, "cid", agent_pb2.AGENT_STATE_LOGGED_OUT)
            waits["two_agents"] = new_caller_wait(channel)
            waits["capacity"] = capacity_slots(channel)
            report(
                channel,
                "c-0",
                contact_pb2.CONTACT_EVENT_TYPE_ANSWERED,
                agent="agents/ann",
            )
            report(channel, "c-1", contact_pb2.CONTACT_EVENT_TYPE_ABANDONED)
            waits["three_queued"] = new_caller_wait(channel)
            waits["created"] = create_wait(channel, "customer-live")
        waits["first_status"] = first.terminate()

        second = ServeProcess(
            folder,
            token=TOKEN,
            extra_env={"CALLSURE_PREDICTION__MODEL_FILE": str(model_path)},
        )
        with grpc.insecure_channel(second.address) as channel:
            waits["restarted"] = new_caller_wait(channel)
        second.terminate()
        waits["second_log"] = second.log()
        waits["model_path"] = str(model_path)
        yield waits
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_empty_queue_nobody_ahead(runs):
    assert runs["empty"].ahead_count == 0


def test_queued_callers_ahead_of_new_caller(runs):
    assert runs["five_queued"].ahead_count == 5


def test_more_callers_ahead_longer_wait(runs):
    assert mean_s(runs["five_queued"]) > mean_s(runs["empty"])
    assert quantiles(runs["five_queued"])[0.9] > quantiles(runs["empty"])[0.9]


def test_fewer_agents_longer_wait(runs):
    assert runs["two_agents"].ahead_count == 5
    assert mean_s(runs["two_agents"]) > mean_s(runs["five_queued"])
    assert quantiles(runs["two_agents"])[0.5] > quantiles(runs["five_queued"])[0.5]


def test_capacity_counts_live_agents(runs):
    assert len(runs["capacity"]) == 4
    assert [slot.agent_count for slot in runs["capacity"]] == [2.0] * 4


def test_answered_and_abandoned_leave_queue(runs):
    assert runs["three_queued"].ahead_count == 3


def test_created_callback_counts_live_queue(runs):
    assert runs["created"].ahead_count == 3
    assert mean_s(runs["created"]) == pytest.approx(mean_s(runs["three_queued"]))


def test_live_queue_survives_restart(runs):
    assert runs["first_status"] == 0
    assert runs["restarted"].ahead_count == 3


def test_model_file_loaded_after_restart(runs):
    assert f"wait model {runs['model_path']} loaded" in runs["second_log"]
    assert quantiles(runs["restarted"]) != quantiles(runs["three_queued"])

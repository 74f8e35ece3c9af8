"""`callsure serve` as a real subprocess: Ray, SQLite and gRPC on 127.0.0.1."""

import json
import shutil
import subprocess
import sys
import uuid
from concurrent import futures
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from serve_support import ServeProcess, private_folder

from callsure.actors.errors import decode_status
from callsure.v1 import (
    admin_pb2,
    admin_pb2_grpc,
    agent_pb2,
    agent_pb2_grpc,
    callback_pb2,
    callback_pb2_grpc,
    common_pb2,
    contact_pb2,
    contact_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
    prediction_pb2,
    prediction_pb2_grpc,
)

pytestmark = pytest.mark.slow

TOKEN = "test-token-" + uuid.uuid4().hex
CALL_TIMEOUT_S = 30.0


@pytest.fixture(scope="module")
def server():
    folder = private_folder()
    process = ServeProcess(folder, token=TOKEN)
    yield process
    process.kill()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as channel:
        yield channel


def auth(token=TOKEN):
    return (("authorization", f"Bearer {token}"),)


def new_callback(customer_id, phone="+14155550100", queue="billing"):
    return callback_pb2.Callback(
        customer_id=customer_id, phone_number=phone, queue=queue
    )


def create(stub, callback, request_id=None):
    request = callback_pb2.CreateCallbackRequest(
        callback=callback, request_id=request_id or uuid.uuid4().hex
    )
    return stub.CreateCallback(request, metadata=auth(), timeout=CALL_TIMEOUT_S)


def field_violations(error):
    status = decode_status(error)
    fields = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            fields += [(v.field, v.description) for v in bad_request.field_violations]
    return fields


def read_events(channel, after_cursor=""):
    stub = event_pb2_grpc.EventServiceStub(channel)
    request = event_pb2.StreamEventsRequest(after_cursor=after_cursor)
    return [
        response.event
        for response in stub.StreamEvents(
            request, metadata=auth(), timeout=CALL_TIMEOUT_S
        )
    ]


def test_health_check_serving(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(), metadata=auth())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_missing_token_unauthenticated(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetCallback(callback_pb2.GetCallbackRequest(name="callbacks/x"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_wrong_token_unauthenticated(channel):
    stub = health_pb2_grpc.HealthStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.Check(health_pb2.HealthCheckRequest(), metadata=auth("wrong"))
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_token_never_logged(server, channel):
    test_health_check_serving(channel)
    assert TOKEN not in server.log()


def test_log_has_no_ray_start_noise(server, channel):
    log = server.log()
    assert "SIGTERM handler is not set" not in log
    assert "Token authentication is enabled" not in log
    assert "\x1b[" not in log


def test_created_callback_pending_with_wait(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    reply = create(stub, new_callback("customer-created"))
    callback = reply.callback
    assert callback.name.startswith("callbacks/")
    assert callback.state == callback_pb2.CALLBACK_STATE_PENDING
    assert callback.promised_window.HasField("start_time")
    assert len(callback.expected_wait.quantiles) >= 2
    assert not reply.replayed


def test_replayed_request_id_returns_first(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    request_id = uuid.uuid4().hex
    first = create(stub, new_callback("customer-replay"), request_id)
    second = create(stub, new_callback("customer-replay"), request_id)
    assert second.replayed
    assert second.callback.name == first.callback.name
    assert second.callback.phone_number == "+14155550100"


def test_reused_request_id_rejected(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    request_id = uuid.uuid4().hex
    create(stub, new_callback("customer-reuse"), request_id)
    with pytest.raises(grpc.RpcError) as raised:
        create(stub, new_callback("customer-reuse", phone="+14155550199"), request_id)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(raised.value)
    assert violations[0][0] == "request_id"
    assert "new request id" in violations[0][1]


def test_phone_number_invalid_names_field(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        create(stub, new_callback("customer-bad-phone", phone="0800-CALL-ME"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(raised.value)
    assert violations[0][0] == "callback.phone_number"
    assert "E.164" in violations[0][1]


def test_missing_request_id_names_field(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    request = callback_pb2.CreateCallbackRequest(callback=new_callback("c-no-id"))
    with pytest.raises(grpc.RpcError) as raised:
        stub.CreateCallback(request, metadata=auth(), timeout=CALL_TIMEOUT_S)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value)[0][0] == "request_id"


def test_malformed_local_time_names_field(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    callback = new_callback("customer-bad-time")
    callback.mode = callback_pb2.CALLBACK_MODE_AT_TIME
    callback.requested_local_time = "tomorrow at noon"
    callback.time_zone = "Europe/Berlin"
    with pytest.raises(grpc.RpcError) as raised:
        create(stub, callback)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = field_violations(raised.value)
    assert violations[0][0] == "callback.requested_local_time"
    assert "tomorrow at noon" in violations[0][1]


def test_unkeepable_time_names_nearest(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    callback = new_callback("customer-far-future")
    callback.mode = callback_pb2.CALLBACK_MODE_AT_TIME
    callback.requested_time.GetCurrentTime()
    callback.requested_time.seconds += 5 * 86400
    with pytest.raises(grpc.RpcError) as raised:
        create(stub, callback)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    infos = []
    for detail in decode_status(raised.value).details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            infos.append(info)
    assert infos[0].reason == "TIME_INFEASIBLE"
    assert "nearest_feasible_time" in infos[0].metadata


def test_unknown_callback_not_found(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        stub.GetCallback(
            callback_pb2.GetCallbackRequest(name="callbacks/cb_missing"),
            metadata=auth(),
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_cancel_then_cancel_again(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    name = create(stub, new_callback("customer-cancel")).callback.name
    request = callback_pb2.CancelCallbackRequest(name=name, reason="test")
    first = stub.CancelCallback(request, metadata=auth()).callback
    second = stub.CancelCallback(request, metadata=auth()).callback
    assert first.state == callback_pb2.CALLBACK_STATE_CANCELLED
    assert second.state == callback_pb2.CALLBACK_STATE_CANCELLED


def test_event_stream_ordered_and_resumable(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    for index in range(4):
        create(stub, new_callback(f"customer-events-{index}"))
    events = read_events(channel)
    sequences = [event.sequence for event in events]
    assert sequences == list(range(1, len(events) + 1))
    middle = events[len(events) // 2]
    resumed = read_events(channel, after_cursor=middle.cursor)
    assert [e.sequence for e in resumed] == sequences[len(events) // 2 + 1 :]


def test_event_stream_follow_sees_new_callback(channel):
    start = read_events(channel)[-1].cursor
    stub = event_pb2_grpc.EventServiceStub(channel)
    stream = stub.StreamEvents(
        event_pb2.StreamEventsRequest(after_cursor=start, follow=True),
        metadata=auth(),
        timeout=CALL_TIMEOUT_S,
    )
    name = create(
        callback_pb2_grpc.CallbackServiceStub(channel), new_callback("customer-follow")
    ).callback.name
    event = next(iter(stream)).event
    stream.cancel()
    assert event.callback == name
    assert event.kind == "callback.created"
    assert "+14155550100" not in event.callback_snapshot.phone_number


def test_list_filters_and_pages(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    for index in range(3):
        create(stub, new_callback(f"customer-list-{index}", queue="loans"))
    request = callback_pb2.ListCallbacksRequest(queue="loans", page_size=2)
    first = stub.ListCallbacks(request, metadata=auth())
    request.page_token = first.next_page_token
    second = stub.ListCallbacks(request, metadata=auth())
    names = [c.name for c in [*first.callbacks, *second.callbacks]]
    assert len(names) == 3
    assert len(set(names)) == 3
    assert second.next_page_token == ""


def list_all(stub):
    request = callback_pb2.ListCallbacksRequest(page_size=1000)
    states = {}
    while True:
        reply = stub.ListCallbacks(request, metadata=auth(), timeout=CALL_TIMEOUT_S)
        states.update({c.name: c.state for c in reply.callbacks})
        if not reply.next_page_token:
            return states
        request.page_token = reply.next_page_token


def test_callbacks_survive_sigkill_restart():
    folder = private_folder()
    try:
        first = ServeProcess(folder, token=TOKEN)
        with grpc.insecure_channel(first.address) as channel:
            stub = callback_pb2_grpc.CallbackServiceStub(channel)
            with futures.ThreadPoolExecutor(16) as pool:
                replies = list(
                    pool.map(
                        lambda i: create(stub, new_callback(f"customer-{i:03d}")),
                        range(200),
                    )
                )
            to_cancel = [reply.callback.name for reply in replies[:20]]
            for name in to_cancel:
                stub.CancelCallback(
                    callback_pb2.CancelCallbackRequest(name=name), metadata=auth()
                )
            before = list_all(stub)
        first.kill()

        second = ServeProcess(folder, token=TOKEN)
        with grpc.insecure_channel(second.address) as channel:
            after = list_all(callback_pb2_grpc.CallbackServiceStub(channel))
        status = second.terminate()
        log = second.log()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert len(before) == 200
    assert after == before
    assert (
        sum(state == callback_pb2.CALLBACK_STATE_CANCELLED for state in after.values())
        == 20
    )
    assert status == 0
    assert "stopped" in log


# The other services, on the same server.


def contact_event(contact_type, customer_id, **fields):
    event = contact_pb2.ContactEvent(
        contact_id=uuid.uuid4().hex,
        type=contact_type,
        customer_id=customer_id,
        queue="billing",
        **fields,
    )
    event.event_time.GetCurrentTime()
    return event


def test_answered_contact_drops_callback(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    name = create(stub, new_callback("customer-answered")).callback.name
    contacts = contact_pb2_grpc.ContactServiceStub(channel)
    event = contact_event(
        contact_pb2.CONTACT_EVENT_TYPE_ANSWERED, "customer-answered", agent="agents/a1"
    )
    reply = contacts.ReportContactEvent(
        contact_pb2.ReportContactEventRequest(event=event), metadata=auth()
    )
    callback = stub.GetCallback(
        callback_pb2.GetCallbackRequest(name=name), metadata=auth()
    ).callback
    assert list(reply.superseded_callbacks) == [name]
    assert callback.state == callback_pb2.CALLBACK_STATE_DROPPED


def test_contact_stream_counts_events(channel):
    contacts = contact_pb2_grpc.ContactServiceStub(channel)
    kinds = (
        contact_pb2.CONTACT_EVENT_TYPE_ARRIVED,
        contact_pb2.CONTACT_EVENT_TYPE_QUEUED,
        contact_pb2.CONTACT_EVENT_TYPE_ABANDONED,
    )
    requests = [
        contact_pb2.StreamContactEventsRequest(
            event=contact_event(kind, "customer-stream")
        )
        for kind in kinds
    ]
    reply = contacts.StreamContactEvents(iter(requests), metadata=auth())
    assert reply.accepted_count == 3


def test_contact_stream_many_customers(channel):
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    answered = [f"customer-bulk-{n}" for n in range(3)]
    names = [create(stub, new_callback(c)).callback.name for c in answered]
    requests = [
        contact_pb2.StreamContactEventsRequest(
            event=contact_event(kind, f"customer-many-{n}")
        )
        for n in range(200)
        for kind in (
            contact_pb2.CONTACT_EVENT_TYPE_ARRIVED,
            contact_pb2.CONTACT_EVENT_TYPE_QUEUED,
            contact_pb2.CONTACT_EVENT_TYPE_ABANDONED,
        )
    ]
    # ANSWERED events in the middle and at the end, so they fall in different batches.
    for position, customer in zip((1, 300, 600), answered, strict=True):
        event = contact_event(
            contact_pb2.CONTACT_EVENT_TYPE_ANSWERED, customer, agent="agents/a1"
        )
        requests.insert(position, contact_pb2.StreamContactEventsRequest(event=event))
    contacts = contact_pb2_grpc.ContactServiceStub(channel)
    reply = contacts.StreamContactEvents(iter(requests), metadata=auth())
    assert reply.accepted_count == 603
    assert list(reply.superseded_callbacks) == names


def test_answered_contact_without_agent_rejected(channel):
    contacts = contact_pb2_grpc.ContactServiceStub(channel)
    event = contact_event(contact_pb2.CONTACT_EVENT_TYPE_ANSWERED, "customer-x")
    with pytest.raises(grpc.RpcError) as raised:
        contacts.ReportContactEvent(
            contact_pb2.ReportContactEventRequest(event=event), metadata=auth()
        )
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value)[0][0] == "event.agent"


def test_agent_state_listed(channel):
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    agent = agent_pb2.Agent(name="agents/alice", group="billing", skills=["en"])
    agents.UpdateAgent(
        agent_pb2.UpdateAgentRequest(agent=agent, allow_missing=True), metadata=auth()
    )
    agents.ReportAgentState(
        agent_pb2.ReportAgentStateRequest(
            agent="agents/alice", state=agent_pb2.AGENT_STATE_READY
        ),
        metadata=auth(),
    )
    listed = agents.ListAgents(
        agent_pb2.ListAgentsRequest(states=[agent_pb2.AGENT_STATE_READY]),
        metadata=auth(),
    )
    assert [a.name for a in listed.agents] == ["agents/alice"]
    assert listed.agents[0].group == "billing"
    assert list(listed.agents[0].skills) == ["en"]


def test_unknown_agent_state_not_found(channel):
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    with pytest.raises(grpc.RpcError) as raised:
        agents.ReportAgentState(
            agent_pb2.ReportAgentStateRequest(
                agent="agents/nobody", state=agent_pb2.AGENT_STATE_BUSY
            ),
            metadata=auth(),
        )
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_grade_rules_make_vip(channel):
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    admin.UpdateGradeRules(
        admin_pb2.UpdateGradeRulesRequest(vip_customer_ids=["customer-vip"]),
        metadata=auth(),
    )
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    callback = create(stub, new_callback("customer-vip")).callback
    assert callback.grade == common_pb2.CUSTOMER_GRADE_VIP


def test_windows_invalid_zone_names_field(channel):
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    request = admin_pb2.UpdateCallbackWindowsRequest(
        queue="billing", time_zone="Mars/Olympus"
    )
    request.periods.add(
        weekday=admin_pb2.WEEKDAY_MONDAY,
        name="day",
        start_local_time="08:00",
        end_local_time="18:00",
    )
    with pytest.raises(grpc.RpcError) as raised:
        admin.UpdateCallbackWindows(request, metadata=auth())
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field_violations(raised.value)[0][0] == "time_zone"


def test_retry_policy_stored_and_journaled(channel):
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    request = admin_pb2.UpdateRetryPolicyRequest(max_attempts=3)
    rule = request.rules.add(outcome=callback_pb2.CALL_OUTCOME_BUSY, max_retries=2)
    rule.delays.add(seconds=60)
    reply = admin.UpdateRetryPolicy(request, metadata=auth())
    last = read_events(channel)[-1]
    assert reply.max_attempts == 3
    assert last.kind == "policy.changed"


def test_estimate_wait_has_quantiles(channel):
    prediction = prediction_pb2_grpc.PredictionServiceStub(channel)
    reply = prediction.EstimateWait(
        prediction_pb2.EstimateWaitRequest(queue="billing", ahead_count=3),
        metadata=auth(),
    )
    waits = [q.wait.ToTimedelta() for q in reply.wait.quantiles]
    assert len(waits) >= 2
    assert waits == sorted(waits)


def test_capacity_covers_range(channel):
    prediction = prediction_pb2_grpc.PredictionServiceStub(channel)
    request = prediction_pb2.GetCapacityRequest(queue="billing")
    request.interval.start_time.GetCurrentTime()
    request.interval.end_time.seconds = request.interval.start_time.seconds + 3600
    request.slot_duration.seconds = 900
    reply = prediction.GetCapacity(request, metadata=auth())
    assert len(reply.slots) == 4
    assert all(slot.callback_count >= 0 for slot in reply.slots)


def test_dedicated_agent_given_to_callback(channel):
    agents = agent_pb2_grpc.AgentServiceStub(channel)
    agent = agent_pb2.Agent(
        name="agents/bob", group="billing", dedicated_customer_ids=["customer-ded"]
    )
    agents.UpdateAgent(
        agent_pb2.UpdateAgentRequest(agent=agent, allow_missing=True), metadata=auth()
    )
    stub = callback_pb2_grpc.CallbackServiceStub(channel)
    callback = create(stub, new_callback("customer-ded")).callback
    assert callback.dedicated_agent == "agents/bob"


def test_reflection_lists_services(channel):
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    request = reflection_pb2.ServerReflectionRequest(list_services="")
    [reply] = list(stub.ServerReflectionInfo(iter([request]), metadata=auth()))
    names = {service.name for service in reply.list_services_response.service}
    assert "callsure.v1.CallbackService" in names
    assert "callsure.v1.EventService" in names
    assert "grpc.health.v1.Health" in names


def run_client(server, *args, token=TOKEN):
    return subprocess.run(
        [sys.executable, "-m", "callsure.actors.cli", "client"]
        + ["--address", server.address, "--token", token, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_client_create_get_cancel(server):
    created = run_client(
        server,
        "create",
        "--customer",
        "customer-cli",
        "--phone",
        "+14155550123",
        "--queue",
        "billing",
        "--ivr",
        "main:2",
    )
    name = json.loads(created.stdout)["callback"]["name"]
    fetched = run_client(server, "get", name)
    cancelled = run_client(server, "cancel", name, "--reason", "test")
    events = run_client(server, "events", "--no-follow")
    assert created.returncode == 0
    assert json.loads(fetched.stdout)["ivr_history"] == ["main:2"]
    assert json.loads(cancelled.stdout)["state"] == "CALLBACK_STATE_CANCELLED"
    kinds = [
        json.loads(line)["kind"]
        for line in events.stdout.splitlines()
        if json.loads(line).get("callback") == name
    ]
    assert kinds == ["callback.created", "callback.cancelled"]


def test_client_reports_field_violation(server):
    result = run_client(
        server, "create", "--customer", "c", "--phone", "12", "--queue", "billing"
    )
    assert result.returncode == 1
    assert "INVALID_ARGUMENT" in result.stderr
    assert "callback.phone_number" in result.stderr


def test_client_without_token_fails(server):
    result = run_client(server, "list", token="")
    assert result.returncode == 1
    assert "UNAUTHENTICATED" in result.stderr


def test_client_create_window_mode(server, channel):
    admin = admin_pb2_grpc.AdminServiceStub(channel)
    request = admin_pb2.UpdateCallbackWindowsRequest(
        queue="windows-cli", time_zone="UTC"
    )
    for weekday in range(1, 8):
        request.periods.add(
            weekday=weekday,
            name="morning",
            start_local_time="08:00",
            end_local_time="12:00",
        )
    admin.UpdateCallbackWindows(request, metadata=auth())
    day = (datetime.now(UTC) + timedelta(days=1)).date().isoformat()
    created = run_client(
        server,
        "create",
        "--customer",
        "customer-window",
        "--phone",
        "+14155550124",
        "--queue",
        "windows-cli",
        "--time-zone",
        "UTC",
        "--window-date",
        day,
        "--window-period",
        "morning",
    )
    assert created.returncode == 0, created.stderr
    callback = json.loads(created.stdout)["callback"]
    assert callback["mode"] == "CALLBACK_MODE_WINDOW"
    assert callback["promised_window"]["end_time"] == f"{day}T12:00:00Z"
    assert callback["promised_window"]["start_time"] == f"{day}T08:00:00Z"

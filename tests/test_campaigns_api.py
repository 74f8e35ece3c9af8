"""CampaignService and ``callsure client campaign`` against `callsure serve`.

One real `callsure serve` subprocess (a local Ray and gRPC on 127.0.0.1,
port 0, a private store) with a bearer token. No gateway is registered,
so nothing is dialed: these tests cover the API, its errors and the
stored state. Dialing is covered by test_campaigns.py and
test_campaigns_sip.py.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from click.testing import CliRunner
from google.rpc import error_details_pb2
from serve_support import ServeProcess, private_folder

from callsure.actors.auth import AUTHORIZATION_KEY, SCHEME
from callsure.actors.cli import cli
from callsure.actors.errors import decode_status
from callsure.v1 import (
    callback_pb2,
    callback_pb2_grpc,
    campaign_pb2,
    campaign_pb2_grpc,
    contact_pb2,
    contact_pb2_grpc,
    event_pb2,
    event_pb2_grpc,
)

pytestmark = pytest.mark.slow

TOKEN = "campaign-test-token"
METADATA = ((AUTHORIZATION_KEY, SCHEME + TOKEN),)
CALL_TIMEOUT_S = 60.0


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


@pytest.fixture(scope="module")
def stub(channel):
    return campaign_pb2_grpc.CampaignServiceStub(channel)


def call(stub, method: str, request):
    return getattr(stub, method)(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)


def campaign_message(**fields) -> campaign_pb2.Campaign:
    now = datetime.now(UTC)
    message = campaign_pb2.Campaign(
        display_name="ticket updates",
        kind=campaign_pb2.CAMPAIGN_KIND_VOC_TICKET_UPDATE,
        queue="billing",
        max_in_flight=3,
    )
    message.start_time.FromDatetime(now)
    message.end_time.FromDatetime(now + timedelta(hours=8))
    for name, value in fields.items():
        if name.endswith("_time"):
            getattr(message, name).FromDatetime(value)
        else:
            setattr(message, name, value)
    return message


def create(stub, **fields) -> campaign_pb2.CreateCampaignResponse:
    request = campaign_pb2.CreateCampaignRequest(
        campaign=campaign_message(**fields), request_id=uuid.uuid4().hex
    )
    return call(stub, "CreateCampaign", request)


def target(customer_id: str, phone: str, **fields) -> campaign_pb2.CampaignTarget:
    return campaign_pb2.CampaignTarget(
        customer_id=customer_id, phone_number=phone, **fields
    )


def violation(error: grpc.RpcError) -> error_details_pb2.BadRequest.FieldViolation:
    status = decode_status(error)
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    return bad_request.field_violations[0]


def test_create_returns_draft(stub):
    response = create(stub)
    assert response.campaign.name.startswith("campaigns/")
    assert response.campaign.state == campaign_pb2.CAMPAIGN_STATE_DRAFT
    assert response.campaign.display_name == "ticket updates"
    assert not response.replayed


def test_create_replay_returns_first(stub):
    request = campaign_pb2.CreateCampaignRequest(
        campaign=campaign_message(), request_id=uuid.uuid4().hex
    )
    first = call(stub, "CreateCampaign", request)
    again = call(stub, "CreateCampaign", request)
    assert again.replayed
    assert again.campaign.name == first.campaign.name


def test_call_without_token_unauthenticated(stub):
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetCampaign(
            campaign_pb2.GetCampaignRequest(name="campaigns/x"), timeout=CALL_TIMEOUT_S
        )
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"max_in_flight": 0}, "campaign.max_in_flight"),
        ({"kind": 0}, "campaign.kind"),
        ({"display_name": ""}, "campaign.display_name"),
        (
            {"end_time": datetime.now(UTC) - timedelta(hours=1)},
            "campaign.end_time",
        ),
        ({"sms_text": "Hello {customer}"}, "campaign.sms_text"),
    ],
)
def test_create_invalid_names_field(stub, fields, field):
    with pytest.raises(grpc.RpcError) as caught:
        create(stub, **fields)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(caught.value).field == field


def test_sms_text_stored_and_returned(stub):
    custom = create(stub, sms_text="About {campaign}: call us, ref {callback_id}")
    promotion = create(stub, kind=campaign_pb2.CAMPAIGN_KIND_VIP_PROMOTION)
    ticket = create(stub)
    got = call(
        stub,
        "GetCampaign",
        campaign_pb2.GetCampaignRequest(name=custom.campaign.name),
    )
    assert got.campaign.sms_text == "About {campaign}: call us, ref {callback_id}"
    assert promotion.campaign.HasField("sms_text")
    assert promotion.campaign.sms_text == ""
    assert "ticket" in ticket.campaign.sms_text


def test_sms_text_error_names_placeholders(stub):
    with pytest.raises(grpc.RpcError) as caught:
        create(stub, sms_text="Hello {customer}")
    description = violation(caught.value).description
    assert "{customer}" in description
    assert "{campaign}, {queue}, {callback_id}" in description


def test_add_targets_normalises_phone(stub):
    name = create(stub).campaign.name
    response = call(
        stub,
        "AddCampaignTargets",
        campaign_pb2.AddCampaignTargetsRequest(
            campaign=name,
            targets=[
                target(
                    "c-1",
                    "+1 (415) 555-0101",
                    context=["ticket=T-1042", "status=resolved"],
                    dedicated_agent="agents/agent-7",
                ),
                target("c-1", "+14155550101"),
            ],
        ),
    )
    first, again = response.targets
    assert response.added_count == 1
    assert first.phone_number == "+14155550101"
    assert first.state == callback_pb2.CALLBACK_STATE_PENDING
    assert list(first.context) == ["ticket=T-1042", "status=resolved"]
    assert first.dedicated_agent == "agents/agent-7"
    assert again.callback == first.callback


def add(stub, name, *targets) -> campaign_pb2.AddCampaignTargetsResponse:
    request = campaign_pb2.AddCampaignTargetsRequest(campaign=name, targets=targets)
    return call(stub, "AddCampaignTargets", request)


def test_new_phone_replaces_pending_target(stub):
    name = create(stub).campaign.name
    first = add(stub, name, target("c-1", "+14155550101")).targets[0]
    moved = add(
        stub, name, target("c-2", "+14155550102"), target("c-1", "+1 415 555 0199")
    )
    again = add(stub, name, target("c-1", "+14155550199"))
    [change] = moved.phone_number_changes
    assert moved.added_count == 1
    assert moved.targets[1].callback == first.callback
    assert moved.targets[1].phone_number == "+14155550199"
    assert change.target_index == 1
    assert change.customer_id == "c-1"
    assert change.previous_phone_number == "+14155550101"
    assert change.requested_phone_number == "+14155550199"
    assert change.replaced
    assert list(again.phone_number_changes) == []
    assert again.added_count == 0


def test_new_phone_of_ended_target_kept(stub):
    name = create(stub).campaign.name
    add(stub, name, target("c-1", "+14155550101"))
    call(
        stub,
        "RemoveCampaignTarget",
        campaign_pb2.RemoveCampaignTargetRequest(campaign=name, customer_id="c-1"),
    )
    unchanged = add(stub, name, target("c-1", "+14155550199"))
    [change] = unchanged.phone_number_changes
    assert not change.replaced
    assert unchanged.targets[0].phone_number == "+14155550101"
    assert unchanged.targets[0].state == callback_pb2.CALLBACK_STATE_CANCELLED


def test_bad_language_names_target(stub):
    name = create(stub).campaign.name
    request = campaign_pb2.AddCampaignTargetsRequest(
        campaign=name,
        targets=[
            target("c-1", "+14155550101", language="pt-BR"),
            target("c-2", "+14155550102", language="klingon-xx-123"),
        ],
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(stub, "AddCampaignTargets", request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(caught.value).field == "targets[1].language"
    assert "such as en, en-US" in violation(caught.value).description


def test_target_is_campaign_callback(stub, channel):
    name = create(stub).campaign.name
    added = call(
        stub,
        "AddCampaignTargets",
        campaign_pb2.AddCampaignTargetsRequest(
            campaign=name, targets=[target("c-2", "+14155550102")]
        ),
    )
    callbacks = callback_pb2_grpc.CallbackServiceStub(channel)
    callback = callbacks.GetCallback(
        callback_pb2.GetCallbackRequest(name=added.targets[0].callback),
        metadata=METADATA,
        timeout=CALL_TIMEOUT_S,
    ).callback
    assert callback.mode == callback_pb2.CALLBACK_MODE_CAMPAIGN
    assert callback.campaign == name


def test_bad_phone_names_target(stub):
    name = create(stub).campaign.name
    request = campaign_pb2.AddCampaignTargetsRequest(
        campaign=name,
        targets=[target("c-1", "+14155550101"), target("c-2", "0415-555")],
    )
    with pytest.raises(grpc.RpcError) as caught:
        call(stub, "AddCampaignTargets", request)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(caught.value).field == "targets[1].phone_number"
    listed = call(
        stub,
        "ListCampaignTargets",
        campaign_pb2.ListCampaignTargetsRequest(campaign=name),
    )
    assert list(listed.targets) == []


def test_unknown_campaign_not_found(stub):
    with pytest.raises(grpc.RpcError) as caught:
        call(stub, "GetCampaign", campaign_pb2.GetCampaignRequest(name="campaigns/no"))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_malformed_name_invalid(stub):
    with pytest.raises(grpc.RpcError) as caught:
        call(stub, "StartCampaign", campaign_pb2.StartCampaignRequest(name="c-1"))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(caught.value).field == "name"


def test_pause_draft_failed_precondition(stub):
    name = create(stub).campaign.name
    with pytest.raises(grpc.RpcError) as caught:
        call(stub, "PauseCampaign", campaign_pb2.PauseCampaignRequest(name=name))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_start_pause_and_counts(stub):
    name = create(stub).campaign.name
    call(
        stub,
        "AddCampaignTargets",
        campaign_pb2.AddCampaignTargetsRequest(
            campaign=name,
            targets=[target(f"c-{i}", f"+1415555020{i}") for i in range(3)],
        ),
    )
    started = call(stub, "StartCampaign", campaign_pb2.StartCampaignRequest(name=name))
    paused = call(stub, "PauseCampaign", campaign_pb2.PauseCampaignRequest(name=name))
    summary = call(stub, "GetCampaign", campaign_pb2.GetCampaignRequest(name=name))
    assert started.campaign.state == campaign_pb2.CAMPAIGN_STATE_RUNNING
    assert started.campaign.HasField("started_time")
    assert paused.campaign.state == campaign_pb2.CAMPAIGN_STATE_PAUSED
    assert summary.campaign.target_count == 3
    assert [(c.state, c.count) for c in summary.target_counts] == [
        (callback_pb2.CALLBACK_STATE_PENDING, 3)
    ]
    assert list(summary.outcome_counts) == []


def test_campaign_ends_without_gateway(stub):
    # No gateway is registered, yet the campaign and its pending target
    # must end at the end time rather than read RUNNING forever.
    end = datetime.now(UTC) + timedelta(seconds=3)
    name = create(stub, end_time=end).campaign.name
    call(
        stub,
        "AddCampaignTargets",
        campaign_pb2.AddCampaignTargetsRequest(
            campaign=name, targets=[target("c-1", "+14155550801")]
        ),
    )
    call(stub, "StartCampaign", campaign_pb2.StartCampaignRequest(name=name))
    request = campaign_pb2.GetCampaignRequest(name=name)
    deadline = time.monotonic() + CALL_TIMEOUT_S
    summary = call(stub, "GetCampaign", request)
    while (
        summary.campaign.state != campaign_pb2.CAMPAIGN_STATE_FINISHED
        and time.monotonic() < deadline
    ):
        time.sleep(0.5)
        summary = call(stub, "GetCampaign", request)
    assert summary.campaign.state == campaign_pb2.CAMPAIGN_STATE_FINISHED
    assert [(c.state, c.count) for c in summary.target_counts] == [
        (callback_pb2.CALLBACK_STATE_EXPIRED, 1)
    ]


def test_events_name_campaign(stub, channel):
    name = create(stub).campaign.name
    added = call(
        stub,
        "AddCampaignTargets",
        campaign_pb2.AddCampaignTargetsRequest(
            campaign=name, targets=[target("c-1", "+14155550601")]
        ),
    )
    call(stub, "StartCampaign", campaign_pb2.StartCampaignRequest(name=name))

    stream = event_pb2_grpc.EventServiceStub(channel).StreamEvents(
        event_pb2.StreamEventsRequest(), metadata=METADATA, timeout=CALL_TIMEOUT_S
    )

    kinds = [
        (response.event.kind, response.event.callback)
        for response in stream
        if response.event.campaign == name
    ]
    assert kinds == [
        ("campaign.created", ""),
        ("callback.created", added.targets[0].callback),
        ("campaign.started", ""),
    ]


def test_campaigns_listed_by_state(stub):
    draft = create(stub).campaign.name
    running = create(stub).campaign.name
    call(stub, "StartCampaign", campaign_pb2.StartCampaignRequest(name=running))

    request = campaign_pb2.ListCampaignsRequest(
        state=campaign_pb2.CAMPAIGN_STATE_RUNNING, page_size=1
    )
    names = []
    while True:
        response = call(stub, "ListCampaigns", request)
        names += [campaign.name for campaign in response.campaigns]
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token

    assert running in names
    assert draft not in names
    assert names == sorted(names)


def test_targets_paged_and_removed(stub):
    name = create(stub).campaign.name
    call(
        stub,
        "AddCampaignTargets",
        campaign_pb2.AddCampaignTargetsRequest(
            campaign=name,
            targets=[target(f"c-{i}", f"+1415555030{i}") for i in range(5)],
        ),
    )
    removed = call(
        stub,
        "RemoveCampaignTarget",
        campaign_pb2.RemoveCampaignTargetRequest(
            campaign=name, customer_id="c-1", reason="opt-out"
        ),
    )
    request = campaign_pb2.ListCampaignTargetsRequest(campaign=name, page_size=2)
    customers, pages = [], 0
    while True:
        response = call(stub, "ListCampaignTargets", request)
        customers += [t.customer_id for t in response.targets]
        pages += 1
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token
    assert removed.target.state == callback_pb2.CALLBACK_STATE_CANCELLED
    assert removed.target.state_reason == "opt-out"
    assert customers == [f"c-{i}" for i in range(5)]
    assert pages == 3


def test_answered_contact_drops_target(stub, channel):
    name = create(stub).campaign.name
    added = call(
        stub,
        "AddCampaignTargets",
        campaign_pb2.AddCampaignTargetsRequest(
            campaign=name,
            targets=[
                target("c-contact", "+14155550501"),
                target("c-other", "+14155550502"),
            ],
        ),
    )
    call(stub, "StartCampaign", campaign_pb2.StartCampaignRequest(name=name))
    event = contact_pb2.ContactEvent(
        contact_id=uuid.uuid4().hex,
        type=contact_pb2.CONTACT_EVENT_TYPE_ANSWERED,
        queue="sales",
        customer_id="c-contact",
        agent="agents/agent-1",
    )
    event.event_time.FromDatetime(datetime.now(UTC))

    reply = contact_pb2_grpc.ContactServiceStub(channel).ReportContactEvent(
        contact_pb2.ReportContactEventRequest(event=event),
        metadata=METADATA,
        timeout=CALL_TIMEOUT_S,
    )

    listed = call(
        stub,
        "ListCampaignTargets",
        campaign_pb2.ListCampaignTargetsRequest(campaign=name),
    )
    states = {t.customer_id: t.state for t in listed.targets}
    assert list(reply.superseded_callbacks) == [added.targets[0].callback]
    assert states["c-contact"] == callback_pb2.CALLBACK_STATE_DROPPED
    assert states["c-other"] == callback_pb2.CALLBACK_STATE_PENDING


def test_remove_unknown_customer_not_found(stub):
    name = create(stub).campaign.name
    with pytest.raises(grpc.RpcError) as caught:
        call(
            stub,
            "RemoveCampaignTarget",
            campaign_pb2.RemoveCampaignTargetRequest(
                campaign=name, customer_id="nobody"
            ),
        )
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_create_callback_of_campaign_mode_rejected(channel):
    callbacks = callback_pb2_grpc.CallbackServiceStub(channel)
    request = callback_pb2.CreateCallbackRequest(
        callback=callback_pb2.Callback(
            customer_id="c-1",
            phone_number="+14155550101",
            queue="billing",
            mode=callback_pb2.CALLBACK_MODE_CAMPAIGN,
        ),
        request_id=uuid.uuid4().hex,
    )
    with pytest.raises(grpc.RpcError) as caught:
        callbacks.CreateCallback(request, metadata=METADATA, timeout=CALL_TIMEOUT_S)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert violation(caught.value).field == "callback.mode"


# The command line


def run_client(server, *arguments):
    result = CliRunner().invoke(
        cli,
        ["client", "--address", server.address, "--token", TOKEN, *arguments],
    )
    return result


def test_cli_campaign_round_trip(server, tmp_path):
    now = datetime.now(UTC)
    created = run_client(
        server,
        "campaign",
        "create",
        "--name",
        "complaints",
        "--kind",
        "complaint-follow-up",
        "--queue",
        "billing",
        "--start",
        now.isoformat(),
        "--end",
        (now + timedelta(hours=2)).isoformat(),
    )
    assert created.exit_code == 0, created.output
    name = json.loads(created.output)["campaign"]["name"]

    targets_file = tmp_path / "targets.csv"
    targets_file.write_text(
        "customer_id,phone_number,dedicated_agent,context\n"
        "c-1,+1 415 555 0401,,ticket=T-1|status=open\n"
        "c-2,+14155550402,agent-3,\n"
    )
    added = run_client(
        server, "campaign", "add-targets", name, "--file", str(targets_file)
    )
    started = run_client(server, "campaign", "start", name)
    listed = run_client(server, "campaign", "targets", name, "--all")
    summary = run_client(server, "campaign", "get", name)
    running = run_client(server, "campaign", "list", "--state", "running", "--all")

    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["added_count"] == 2
    assert json.loads(started.output)["state"] == "CAMPAIGN_STATE_RUNNING"
    rows = [json.loads(line) for line in listed.output.splitlines()]
    assert [row["context"] for row in rows if "context" in row] == [
        ["ticket=T-1", "status=open"]
    ]
    assert rows[1]["dedicated_agent"] == "agents/agent-3"
    assert json.loads(summary.output)["campaign"]["target_count"] == 2
    assert name in [json.loads(line)["name"] for line in running.output.splitlines()]


def cli_campaign(server):
    now = datetime.now(UTC)
    created = run_client(
        server,
        "campaign",
        "create",
        "--name",
        "imports",
        "--kind",
        "voc-ticket-update",
        "--queue",
        "billing",
        "--start",
        now.isoformat(),
        "--end",
        (now + timedelta(hours=2)).isoformat(),
    )
    assert created.exit_code == 0, created.output
    return json.loads(created.output)["campaign"]["name"]


def test_cli_targets_byte_order_mark_read(server, tmp_path):
    name = cli_campaign(server)
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfcustomer_id,phone_number\nc-1,+14155550501\n")
    added = run_client(server, "campaign", "add-targets", name, "--file", str(path))
    assert added.exit_code == 0, added.output
    assert json.loads(added.output)["added_count"] == 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            b"customer_id,phone_number\nc-1,+1415\xe9550501\n",
            "line 2 is not UTF-8",
        ),
        (
            b"customer_id,phone_number,context\nc-1,+14155550501," + b"x" * 200_000,
            "keep each field under 131072 characters",
        ),
    ],
    ids=["not-utf8", "huge-field"],
)
def test_cli_targets_unreadable_named(server, tmp_path, content, expected):
    path = tmp_path / "targets.csv"
    path.write_bytes(content)
    result = run_client(
        server, "campaign", "add-targets", "campaigns/x", "--file", str(path)
    )
    assert result.exit_code == 2
    assert expected in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("missing", ["missing.csv", "."])
def test_cli_targets_missing_file_named(server, tmp_path, missing):
    path = tmp_path / missing
    result = run_client(
        server, "campaign", "add-targets", "campaigns/x", "--file", str(path)
    )
    assert result.exit_code == 2
    assert f"{path}: cannot read the file" in result.output


def test_cli_targets_failed_request_names_line(server, tmp_path):
    name = cli_campaign(server)
    rows = [f"b-{index},+1415556{index:04d}" for index in range(1500)]
    rows[1200] = "b-1200,+99"
    path = tmp_path / "big.csv"
    path.write_text("customer_id,phone_number\n" + "\n".join(rows) + "\n")

    failed = run_client(server, "campaign", "add-targets", name, "--file", str(path))
    stored = run_client(server, "campaign", "get", name)
    rows[1200] = "b-1200,+14155570000"
    path.write_text("customer_id,phone_number\n" + "\n".join(rows) + "\n")
    again = run_client(server, "campaign", "add-targets", name, "--file", str(path))
    complete = run_client(server, "campaign", "get", name)

    assert failed.exit_code == 1
    assert "on line 1202" in failed.output
    assert "The rows up to line 1001 are stored" in failed.output
    assert "+99" not in failed.output
    assert json.loads(stored.output)["campaign"]["target_count"] == 1000
    assert again.exit_code == 0, again.output
    assert json.loads(complete.output)["campaign"]["target_count"] == 1500


def test_cli_new_phone_warned_masked(server, tmp_path):
    name = cli_campaign(server)
    path = tmp_path / "crm.csv"
    path.write_text("customer_id,phone_number\nc-1,+14155550701\nc-2,+14155550702\n")
    first = run_client(server, "campaign", "add-targets", name, "--file", str(path))
    run_client(server, "campaign", "remove-target", name, "c-2")
    path.write_text("customer_id,phone_number\nc-1,+14155550791\nc-2,+14155550792\n")
    again = run_client(server, "campaign", "add-targets", name, "--file", str(path))
    listed = run_client(server, "campaign", "targets", name, "--all")

    assert first.exit_code == 0, first.output
    assert again.exit_code == 0, again.output
    warnings = [line for line in again.output.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert f"{path}:2: customer 'c-1'" in warnings[0]
    assert "now dials +14*******91 instead of +14*******01" in warnings[0]
    assert f"{path}:3: customer 'c-2'" in warnings[1]
    assert "is cancelled, so it keeps +14*******02" in warnings[1]
    for number in ("+14155550701", "+14155550791", "+14155550702", "+14155550792"):
        assert number not in again.output
    phones = [json.loads(line)["phone_number"] for line in listed.output.splitlines()]
    assert phones == ["+14155550791", "+14155550702"]


def test_cli_naive_start_rejected(server):
    result = run_client(
        server,
        "campaign",
        "create",
        "--name",
        "x",
        "--kind",
        "vip-promotion",
        "--queue",
        "billing",
        "--start",
        "2026-12-07T09:00",
        "--end",
        "2026-12-07T18:00Z",
    )
    assert result.exit_code == 2
    assert "offset" in result.output


def test_cli_sms_text_option(server):
    now = datetime.now(UTC)
    arguments = [
        "campaign",
        "create",
        "--name",
        "vip",
        "--kind",
        "vip-promotion",
        "--queue",
        "billing",
        "--start",
        now.isoformat(),
        "--end",
        (now + timedelta(hours=2)).isoformat(),
    ]
    created = run_client(server, *arguments, "--sms-text", "Your {campaign} offer")
    rejected = run_client(server, *arguments, "--sms-text", "Hi {name}")

    assert created.exit_code == 0, created.output
    assert json.loads(created.output)["campaign"]["sms_text"] == "Your {campaign} offer"
    assert rejected.exit_code == 1
    assert "campaign.sms_text" in rejected.output
    assert "{name}" in rejected.output


@pytest.mark.parametrize("value", ["0", "1001", "99999999999"])
def test_cli_max_in_flight_range_checked(server, value):
    now = datetime.now(UTC)
    result = run_client(
        server,
        "campaign",
        "create",
        "--name",
        "paced",
        "--kind",
        "vip-promotion",
        "--queue",
        "billing",
        "--start",
        now.isoformat(),
        "--end",
        (now + timedelta(hours=2)).isoformat(),
        "--max-in-flight",
        value,
    )
    assert result.exit_code == 2
    assert f"{value} is not in the range 1<=x<=1000" in result.output


def test_cli_error_printed_once(server, tmp_path):
    name = cli_campaign(server)
    path = tmp_path / "targets.csv"
    path.write_text("customer_id,phone_number\nc-1,+14155550101\n,+14155550102\n")
    result = run_client(server, "campaign", "add-targets", name, "--file", str(path))
    lines = result.output.splitlines()
    assert result.exit_code == 1
    assert lines[0].startswith(
        "error: INVALID_ARGUMENT: missing targets[1].customer_id"
    )
    assert result.output.count("send a non-empty customer_id") == 1
    assert lines[1].startswith(f"{path}: the rows on lines 2 to 3 were not added")
    assert "the target named above is on line 3" in lines[1]


def test_cli_missing_token_hint(server):
    result = CliRunner().invoke(
        cli, ["client", "--address", server.address, "campaign", "list", "--all"]
    )
    assert result.exit_code == 1
    assert "UNAUTHENTICATED" in result.output
    assert "--token or in CALLSURE_CLIENT_TOKEN" in result.output


def test_cli_error_prints_field(server):
    result = run_client(server, "campaign", "start", "campaigns/unknown")
    assert result.exit_code == 1
    assert "NOT_FOUND" in result.output


def test_cli_not_found_lists_campaigns(server):
    created = cli_campaign(server)
    unknown = run_client(server, "campaign", "get", "campaigns/unknown")
    removed = run_client(server, "campaign", "remove-target", created, "nobody")
    for result in (unknown, removed):
        assert result.exit_code == 1
        assert "NOT_FOUND" in result.output
        assert "callsure client campaign list --all" in result.output


def test_cli_repeated_customer_warned(server, tmp_path):
    name = cli_campaign(server)
    path = tmp_path / "repeated.csv"
    path.write_text(
        "customer_id,phone_number\n"
        "c-1,+14155550601\n"
        "c-2,+14155550602\n"
        "c-1,+14155550603\n"
    )
    added = run_client(server, "campaign", "add-targets", name, "--file", str(path))
    assert added.exit_code == 0, added.output
    assert "customer 'c-1' on line 4 was already on line 2" in added.output
    assert "+14155550603" not in added.output

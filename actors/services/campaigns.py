"""CampaignService: outbound campaigns and their targets.

Each RPC checks the request's shape, converts it into the engine's
``CampaignRequest`` or ``CampaignTarget`` objects (whose checks name the
invalid field), and sends it to the coordinator, which hosts the
``CampaignScheduler``. Field paths in errors are those of the request,
such as ``campaign.max_in_flight`` or ``targets[2].phone_number``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from callsure.actors.convert import (
    AGENT_PREFIX,
    CAMPAIGN_PREFIX,
    OUTCOME_TO_PROTO,
    STATE_FROM_PROTO,
    STATE_TO_PROTO,
    callback_name,
    from_timestamp,
    set_timestamp,
)
from callsure.actors.errors import translate_errors
from callsure.actors.services.callbacks import page_size_of
from callsure.engine.callbacks import Callback, CallbackState, Outcome
from callsure.engine.campaigns import (
    Campaign,
    CampaignKind,
    CampaignRequest,
    CampaignState,
    CampaignTarget,
    check_request,
)
from callsure.engine.exceptions import ValidationError
from callsure.v1 import campaign_pb2, campaign_pb2_grpc

logger = logging.getLogger(__name__)

KIND_FROM_PROTO = {
    campaign_pb2.CAMPAIGN_KIND_COMPLAINT_FOLLOW_UP: CampaignKind.COMPLAINT_FOLLOW_UP,
    campaign_pb2.CAMPAIGN_KIND_VOC_TICKET_UPDATE: CampaignKind.VOC_TICKET_UPDATE,
    campaign_pb2.CAMPAIGN_KIND_VIP_PROMOTION: CampaignKind.VIP_PROMOTION,
}
KIND_TO_PROTO = {kind: number for number, kind in KIND_FROM_PROTO.items()}
CAMPAIGN_STATE_TO_PROTO = {
    state: campaign_pb2.CampaignState.Value(f"CAMPAIGN_STATE_{state.name}")
    for state in CampaignState
}
CAMPAIGN_STATE_FROM_PROTO = {
    number: state for state, number in CAMPAIGN_STATE_TO_PROTO.items()
}
# Request fields of CreateCampaign that the engine's checks name without
# the "campaign." prefix.
CAMPAIGN_FIELDS = {
    "name": "campaign.display_name",
    "kind": "campaign.kind",
    "queue": "campaign.queue",
    "start_time": "campaign.start_time",
    "end_time": "campaign.end_time",
    "max_in_flight": "campaign.max_in_flight",
    "sms_text": "campaign.sms_text",
}


def parse_campaign_name(name: str, field: str = "name") -> str:
    """Return the id of ``campaigns/{id}`` or raise ``ValidationError``."""
    campaign_id = name.removeprefix(CAMPAIGN_PREFIX)
    if not name.startswith(CAMPAIGN_PREFIX) or not campaign_id or "/" in campaign_id:
        raise ValidationError(
            field, name, "send a resource name of the form campaigns/{campaign}"
        )
    return campaign_id


def campaign_request_from_proto(
    request: campaign_pb2.CreateCampaignRequest,
) -> CampaignRequest:
    """Build the engine's ``CampaignRequest``; the engine checks the values."""
    if not request.HasField("campaign"):
        raise ValidationError("campaign", None, "send the campaign to create")
    message = request.campaign
    if message.kind not in KIND_FROM_PROTO:
        raise ValidationError(
            "campaign.kind",
            message.kind,
            "send CAMPAIGN_KIND_COMPLAINT_FOLLOW_UP, CAMPAIGN_KIND_VOC_TICKET_UPDATE "
            "or CAMPAIGN_KIND_VIP_PROMOTION",
        )
    times = {}
    for field in ("start_time", "end_time"):
        times[field] = from_timestamp(message, field, f"campaign.{field}")
        if times[field] is None:
            raise ValidationError(
                f"campaign.{field}", None, "send a time such as 2026-12-04T09:00:00Z"
            )
    return CampaignRequest(
        request_id=request.request_id,
        name=message.display_name,
        kind=KIND_FROM_PROTO[message.kind],
        queue=message.queue,
        start_time=times["start_time"],
        end_time=times["end_time"],
        max_in_flight=message.max_in_flight,
        sms_text=message.sms_text if message.HasField("sms_text") else None,
    )


def in_campaign(exc: ValidationError) -> ValidationError:
    """Return ``exc`` with its field as a path of CreateCampaignRequest."""
    path = CAMPAIGN_FIELDS.get(exc.field)
    if path is None:
        return exc
    return type(exc)(path, exc.value, exc.fix)


def target_from_proto(
    message: campaign_pb2.CampaignTarget, index: int
) -> CampaignTarget:
    """Build the engine's ``CampaignTarget`` from an API target."""
    agent = ""
    if message.dedicated_agent:
        agent = message.dedicated_agent.removeprefix(AGENT_PREFIX)
        if not message.dedicated_agent.startswith(AGENT_PREFIX) or not agent:
            raise ValidationError(
                f"targets[{index}].dedicated_agent",
                message.dedicated_agent,
                "send a name of the form agents/{agent}, or nothing",
            )
    return CampaignTarget(
        customer_id=message.customer_id.strip(),
        phone_number=message.phone_number,
        dedicated_agent_id=agent or None,
        context=tuple(message.context),
        language=message.language or "en",
    )


def campaign_to_proto(campaign: Campaign) -> campaign_pb2.Campaign:
    """Convert an engine ``Campaign`` to the API's ``Campaign``."""
    message = campaign_pb2.Campaign(
        name=CAMPAIGN_PREFIX + campaign.campaign_id,
        display_name=campaign.name,
        kind=KIND_TO_PROTO[campaign.kind],
        queue=campaign.queue,
        max_in_flight=campaign.max_in_flight,
        state=CAMPAIGN_STATE_TO_PROTO[campaign.state],
        state_reason=campaign.reason,
        target_count=campaign.target_count,
        sms_text=campaign.sms_template,
    )
    set_timestamp(message.start_time, campaign.start_time)
    set_timestamp(message.end_time, campaign.end_time)
    set_timestamp(message.create_time, campaign.created_at)
    set_timestamp(message.update_time, campaign.updated_at or campaign.created_at)
    if campaign.started_at is not None:
        set_timestamp(message.started_time, campaign.started_at)
    return message


def target_to_proto(target: Callback) -> campaign_pb2.CampaignTarget:
    """Convert a campaign target (a ``Callback``) to the API's target."""
    message = campaign_pb2.CampaignTarget(
        callback=callback_name(target.callback_id),
        customer_id=target.customer_id,
        phone_number=target.phone_number,
        context=target.ivr_history,
        language=target.language,
        state=STATE_TO_PROTO[target.state],
        state_reason=target.reason,
        attempt_count=target.attempts,
    )
    if target.dedicated_agent_id:
        message.dedicated_agent = AGENT_PREFIX + target.dedicated_agent_id
    set_timestamp(message.update_time, target.updated_at or target.created_at)
    return message


def summary_to_proto(summary) -> campaign_pb2.GetCampaignResponse:
    """Convert a ``CampaignSummary`` to the GetCampaign response."""
    response = campaign_pb2.GetCampaignResponse(
        campaign=campaign_to_proto(summary.campaign),
        in_flight_count=summary.in_flight,
    )
    states = sorted(
        (STATE_TO_PROTO[CallbackState(value)], count)
        for value, count in summary.target_states.items()
    )
    for state, count in states:
        response.target_counts.add(state=state, count=count)
    outcomes = sorted(
        (OUTCOME_TO_PROTO[Outcome(value)], count)
        for value, count in summary.outcomes.items()
    )
    for outcome, count in outcomes:
        response.outcome_counts.add(outcome=outcome, count=count)
    return response


class CampaignServicer(campaign_pb2_grpc.CampaignServiceServicer):
    """Translate CampaignService calls into coordinator messages."""

    def __init__(self, actors):
        self._coordinator = actors.coordinator

    async def CreateCampaign(self, request, context):
        async with translate_errors(context, "CreateCampaign"):
            engine_request = campaign_request_from_proto(request)
            try:
                # Checked here for the field paths of this request; the
                # engine checks again against its own clock.
                check_request(engine_request, datetime.now(UTC))
            except ValidationError as exc:
                raise in_campaign(exc) from None
            campaign, replayed = await self._coordinator.create_campaign.remote(
                engine_request
            )
            return campaign_pb2.CreateCampaignResponse(
                campaign=campaign_to_proto(campaign), replayed=replayed
            )

    async def AddCampaignTargets(self, request, context):
        async with translate_errors(context, "AddCampaignTargets"):
            campaign_id = parse_campaign_name(request.campaign, "campaign")
            targets = [
                target_from_proto(message, index)
                for index, message in enumerate(request.targets)
            ]
            added = await self._coordinator.add_campaign_targets.remote(
                campaign_id, targets
            )
            return campaign_pb2.AddCampaignTargetsResponse(
                targets=[target_to_proto(target) for target in added.targets],
                added_count=added.added,
                campaign=campaign_to_proto(added.campaign),
                phone_number_changes=[
                    campaign_pb2.CampaignTargetPhoneChange(
                        target_index=change.index,
                        customer_id=change.customer_id,
                        previous_phone_number=change.previous_phone_number,
                        requested_phone_number=change.requested_phone_number,
                        replaced=change.replaced,
                    )
                    for change in added.phone_changes
                ],
            )

    async def StartCampaign(self, request, context):
        async with translate_errors(context, "StartCampaign"):
            campaign_id = parse_campaign_name(request.name)
            campaign = await self._coordinator.start_campaign.remote(campaign_id)
            return campaign_pb2.StartCampaignResponse(
                campaign=campaign_to_proto(campaign)
            )

    async def PauseCampaign(self, request, context):
        async with translate_errors(context, "PauseCampaign"):
            campaign_id = parse_campaign_name(request.name)
            campaign = await self._coordinator.pause_campaign.remote(campaign_id)
            return campaign_pb2.PauseCampaignResponse(
                campaign=campaign_to_proto(campaign)
            )

    async def GetCampaign(self, request, context):
        async with translate_errors(context, "GetCampaign"):
            campaign_id = parse_campaign_name(request.name)
            summary = await self._coordinator.get_campaign.remote(campaign_id)
            return summary_to_proto(summary)

    async def ListCampaigns(self, request, context):
        async with translate_errors(context, "ListCampaigns"):
            page_size = page_size_of(request.page_size)
            state = None
            if request.state:
                if request.state not in CAMPAIGN_STATE_FROM_PROTO:
                    raise ValidationError(
                        "state", request.state, "send a CampaignState value"
                    )
                state = CAMPAIGN_STATE_FROM_PROTO[request.state]
            campaigns, next_token = await self._coordinator.list_campaigns.remote(
                state=state, page_size=page_size, page_token=request.page_token
            )
            return campaign_pb2.ListCampaignsResponse(
                campaigns=[campaign_to_proto(campaign) for campaign in campaigns],
                next_page_token=next_token,
            )

    async def ListCampaignTargets(self, request, context):
        async with translate_errors(context, "ListCampaignTargets"):
            campaign_id = parse_campaign_name(request.campaign, "campaign")
            page_size = page_size_of(request.page_size)
            state = None
            if request.state:
                if request.state not in STATE_FROM_PROTO:
                    raise ValidationError(
                        "state", request.state, "send a CallbackState value"
                    )
                state = STATE_FROM_PROTO[request.state]
            targets, next_token = await self._coordinator.list_campaign_targets.remote(
                campaign_id,
                state=state,
                page_size=page_size,
                page_token=request.page_token,
            )
            return campaign_pb2.ListCampaignTargetsResponse(
                targets=[target_to_proto(target) for target in targets],
                next_page_token=next_token,
            )

    async def RemoveCampaignTarget(self, request, context):
        async with translate_errors(context, "RemoveCampaignTarget"):
            campaign_id = parse_campaign_name(request.campaign, "campaign")
            customer_id = request.customer_id.strip()
            if not customer_id:
                raise ValidationError(
                    "customer_id", request.customer_id, "send the customer to remove"
                )
            target = await self._coordinator.remove_campaign_target.remote(
                campaign_id, customer_id, request.reason or "removed through the API"
            )
            logger.info(
                "campaign %s: target %s removed", campaign_id, target.callback_id
            )
            return campaign_pb2.RemoveCampaignTargetResponse(
                target=target_to_proto(target)
            )

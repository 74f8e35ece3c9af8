"""The promotion scheduler: campaigns created, run and released into spare agents.

``CampaignScheduler`` is the plain state class the coordinator hosts beside
the ``CallbackScheduler``, over the same store, clock and policies. It
keeps nothing in memory that the store lacks.

Release rule (``due``), run after ``CallbackScheduler.due`` in the same
dispatch step, so callbacks always go first. A campaign target of queue
Q is released only when:

* the campaign is running and ``start_time <= now < end_time``;
* Q's callback windows (``CallbackCalendar``) are open;
* no inbound caller waits in Q (``waiting``) and no callback of Q is due
  and still pending, because those keep their place ahead of any campaign
  call;
* the interval has spare capacity: the predictor's callback capacity left
  after inbound keeps its service-level target, less the interval's
  releases and bookings (``PromisePlanner.release_room``, the rule ASAP
  callbacks follow), under the admin cap;
* a free agent of Q is left after this step's callback releases
  (``free_agents``), and a target's dedicated agent is ready;
* fewer than ``max_in_flight`` calls of the campaign are dialing.

NOTE: a campaign call counts against the interval's capacity as an ASAP
callback does, so an ASAP callback requested later in the same interval
may wait for the next one. Timed promises keep the room their booking
reserved, and a callback that is due goes before any campaign call.

Campaigns go in kind order (complaint follow-up, then ticket update, then
promotion), then by start time, then by id. The targets of one campaign go
in the order they were added.

Do not call a customer twice. At release, a target is skipped (``DROPPED``
with the reason) when its customer has an open callback in any queue, or
reached an agent at or after the campaign's ``started_at``. Reaching an
agent is what the contact feed reports (``customer_reached_agent``) and
any callback or campaign call that connects (``report_outcome``). The
store keeps the latest such time per customer while a campaign is active. A
target whose customer has a call of another campaign in flight waits for
a later step.
"""

from __future__ import annotations

import logging
import secrets
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from callsure.engine import paging
from callsure.engine.callbacks import (
    Callback,
    CallbackMode,
    CallbackState,
    DialOrder,
    OutcomeResult,
)
from callsure.engine.campaigns import (
    MAX_TARGETS,
    MAX_TARGETS_PER_REQUEST,
    Campaign,
    CampaignRequest,
    CampaignState,
    CampaignTarget,
    check_request,
    check_target,
)
from callsure.engine.exceptions import (
    InvalidStateError,
    NotFoundError,
    RequestIdReusedError,
    ValidationError,
)
from callsure.engine.phone import mask_number, parse_e164
from callsure.engine.store import journal
from callsure.engine.store.interface import Change

if TYPE_CHECKING:
    from callsure.engine.scheduler import CallbackScheduler

logger = logging.getLogger(__name__)

MAX_PAGE_SIZE = 1000
# Due targets read per campaign beyond its room, so that skipped targets
# and targets waiting for their agent do not end a step early.
LOOKAHEAD_TARGETS = 100
_ACTIVE = (CampaignState.RUNNING.value, CampaignState.PAUSED.value)


@dataclass(frozen=True)
class AddedTargets:
    """Result of ``add_targets``.

    Attributes
    ----------
    campaign : Campaign
        The campaign after the call.
    targets : list of Callback
        Per requested target, in order: the stored target (new, or the
        one the customer already had in this campaign).
    added : int
        Targets stored by this call.
    phone_changes : list of PhoneChange
        Customers already in the campaign whose request sent another
        phone number, in request order.
    """

    campaign: Campaign
    targets: list[Callback]
    added: int
    phone_changes: list[PhoneChange] = field(default_factory=list)


@dataclass(frozen=True)
class PhoneChange:
    """A customer already in the campaign, sent again with another number.

    Attributes
    ----------
    index : int
        Position of the target in the request.
    customer_id : str
    previous_phone_number, requested_phone_number : str
        The stored number before the request and the number sent, both in
        E.164 form.
    replaced : bool
        True when the target was pending and now dials the requested
        number; False when it was dialing or had ended, so it kept the
        previous number.
    """

    index: int
    customer_id: str
    previous_phone_number: str
    requested_phone_number: str
    replaced: bool


@dataclass(frozen=True)
class CampaignSummary:
    """A campaign with the counts ``GetCampaign`` reports.

    Attributes
    ----------
    campaign : Campaign
    target_states : dict[str, int]
        Targets per callback state value.
    outcomes : dict[str, int]
        Finished attempts per outcome value.
    in_flight : int
        Targets being dialed now.
    """

    campaign: Campaign
    target_states: dict[str, int]
    outcomes: dict[str, int]

    @property
    def in_flight(self) -> int:
        return self.target_states.get(CallbackState.DIALING.value, 0)


class CampaignScheduler:
    """Campaigns and their release; see the module docstring.

    Parameters
    ----------
    callbacks : CallbackScheduler
        Shares its store, clock, policies, calendars and planner; campaign
        targets are its callbacks and go through its leases and outcomes.
    """

    def __init__(self, callbacks: CallbackScheduler):
        self.callbacks = callbacks
        self.store = callbacks.store
        self.clock = callbacks.clock

    # Campaigns

    def create(self, request: CampaignRequest) -> tuple[Campaign, bool]:
        """Store a draft campaign; return it and whether the request id was
        a replay.

        Raises
        ------
        ValidationError
            Naming the invalid field.
        RequestIdReusedError
            When the request id made a campaign with other fields.
        """
        now = self.clock.now()
        if isinstance(request.request_id, str) and request.request_id:
            stored = self.store.campaign_for_request(request.request_id)
            if stored is not None:
                if _fields_of(stored) != _fields_of(request):
                    raise RequestIdReusedError(request.request_id)
                return stored, True
        check_request(request, now)
        campaign = Campaign(
            campaign_id=f"cp_{int(now.timestamp() * 1000):012x}{secrets.token_hex(4)}",
            request_id=request.request_id,
            name=request.name.strip(),
            kind=request.kind,
            queue=request.queue,
            start_time=request.start_time,
            end_time=request.end_time,
            max_in_flight=request.max_in_flight,
            created_at=now,
            updated_at=now,
            sms_text=request.sms_text,
        )
        change = Change(campaigns=[campaign])
        change.event(now, journal.CAMPAIGN_CREATED, "", campaign=campaign.to_row())
        self.store.commit(change)
        logger.info(
            "campaign %s: created (%s, queue %s, %s to %s, at most %d in flight)",
            campaign.campaign_id,
            campaign.kind.value,
            campaign.queue,
            campaign.start_time.isoformat(),
            campaign.end_time.isoformat(),
            campaign.max_in_flight,
        )
        return campaign, False

    def get(self, campaign_id: str) -> Campaign:
        campaign = self.store.get_campaign(campaign_id)
        if campaign is None:
            raise NotFoundError("campaign", campaign_id)
        return campaign

    def list(
        self,
        *,
        state: CampaignState | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[Campaign], str]:
        """Return a page of campaigns, oldest first, and the next page's
        token ("" after the last page)."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValidationError("page_size", page_size, f"send 1 to {MAX_PAGE_SIZE}")
        state_value = state.value if state else None
        items = self.store.page_campaigns(
            state=state_value,
            limit=page_size + 1,
            after_id=paging.after_id("ListCampaigns", page_token, state_value),
        )
        if len(items) > page_size:
            items = items[:page_size]
            last = items[-1].campaign_id
            return items, paging.page_token("ListCampaigns", last, state_value)
        return items, ""

    def summary(self, campaign_id: str) -> CampaignSummary:
        """Return the campaign with its target and outcome counts."""
        campaign = self.get(campaign_id)
        return CampaignSummary(
            campaign,
            self.store.count_targets(campaign_id),
            self.store.count_target_outcomes(campaign_id),
        )

    def start(self, campaign_id: str) -> Campaign:
        """Start a draft or resume a paused campaign; idempotent when running.

        Dialing begins at ``start_time`` when that is later.
        """
        campaign = self.get(campaign_id)
        now = self.clock.now()
        if campaign.state is CampaignState.RUNNING:
            return campaign
        if campaign.state is CampaignState.FINISHED:
            raise InvalidStateError(
                f"campaign {campaign_id} is finished ({campaign.reason}); create "
                "a new campaign to call its customers again"
            )
        _check_not_ended(campaign, now)
        started_at = campaign.started_at or max(now, campaign.start_time)
        return self._change_state(
            campaign,
            CampaignState.RUNNING,
            "started" if campaign.started_at is None else "resumed",
            journal.CAMPAIGN_STARTED,
            started_at=started_at,
        )

    def pause(self, campaign_id: str) -> Campaign:
        """Stop new dials of a running campaign; calls in flight go on.

        Idempotent when paused.
        """
        campaign = self.get(campaign_id)
        if campaign.state is CampaignState.PAUSED:
            return campaign
        if campaign.state is not CampaignState.RUNNING:
            raise InvalidStateError(
                f"campaign {campaign_id} is {campaign.state.value}; only a running "
                "campaign can be paused"
            )
        _check_not_ended(campaign, self.clock.now())
        return self._change_state(
            campaign, CampaignState.PAUSED, "paused", journal.CAMPAIGN_PAUSED
        )

    def _change_state(
        self, campaign: Campaign, state: CampaignState, reason: str, kind: str, **more
    ) -> Campaign:
        now = self.clock.now()
        updated = campaign.evolve(now, state=state, reason=reason, **more)
        change = Change(campaigns=[updated])
        change.event(now, kind, "", campaign=updated.to_row(), reason=reason)
        self.store.commit(change)
        logger.info("campaign %s: %s (%s)", campaign.campaign_id, state.value, reason)
        return updated

    # Targets

    def add_targets(
        self, campaign_id: str, targets: list[CampaignTarget]
    ) -> AddedTargets:
        """Store targets in one transaction, after checking every one.

        A customer already in the campaign keeps the target it has, so a
        retried request adds nothing twice. When the request sends that
        customer another phone number, a pending target dials the new
        number from now on (the CRM's data changed), and a target that is
        dialing or has ended keeps the old one; ``phone_changes`` lists
        both cases. Other fields of a stored target stay as they are. A
        customer repeated within one request counts once, with its first
        target.

        Raises
        ------
        ValidationError
            Naming ``targets[i]`` and the field; nothing is stored.
        InvalidStateError
            When the campaign is finished or its end time passed.
        """
        campaign = self.get(campaign_id)
        if campaign.state is CampaignState.FINISHED:
            raise InvalidStateError(
                f"campaign {campaign_id} is finished; add targets to a campaign "
                "that has not ended"
            )
        _check_not_ended(campaign, self.clock.now())
        if not targets or len(targets) > MAX_TARGETS_PER_REQUEST:
            raise ValidationError(
                "targets",
                f"<{len(targets)} targets>",
                f"send 1 to {MAX_TARGETS_PER_REQUEST} targets per request",
            )
        phones = []
        for index, target in enumerate(targets):
            check_target(target, f"targets[{index}]")
            try:
                phones.append(parse_e164(target.phone_number))
            except ValidationError as exc:
                raise type(exc)(
                    f"targets[{index}].phone_number", exc.value, exc.fix
                ) from None

        now = self.clock.now()
        change = Change()
        result: list[Callback] = []
        # The target of each customer of this request, new or stored.
        seen: dict[str, Callback] = {}
        phone_changes: list[PhoneChange] = []
        added = 0
        number = campaign.target_count
        for index, (target, phone) in enumerate(zip(targets, phones, strict=True)):
            existing = seen.get(target.customer_id)
            if existing is not None:
                result.append(existing)
                continue
            request_id = _target_request_id(campaign_id, target.customer_id)
            stored_id = self.store.callback_for_request(request_id)
            if stored_id is not None:
                existing = self.callbacks.get(stored_id)
                if existing.phone_number != phone:
                    phone_change = PhoneChange(
                        index=index,
                        customer_id=target.customer_id,
                        previous_phone_number=existing.phone_number,
                        requested_phone_number=phone,
                        replaced=existing.state is CallbackState.PENDING,
                    )
                    phone_changes.append(phone_change)
                    if phone_change.replaced:
                        existing = self._replace_phone(existing, phone, now, change)
                seen[target.customer_id] = existing
                result.append(existing)
                continue
            number += 1
            if number > MAX_TARGETS:
                raise ValidationError(
                    "targets",
                    f"<{number} targets>",
                    f"a campaign holds at most {MAX_TARGETS} targets; create "
                    "another campaign for the rest",
                )
            callback = self._target_callback(campaign, number, target, phone, now)
            change.callbacks.append(callback)
            change.requests.append((request_id, callback.callback_id))
            change.event(
                now,
                journal.CALLBACK_CREATED,
                callback.callback_id,
                callback=callback.to_row(),
            )
            added += 1
            seen[target.customer_id] = callback
            result.append(callback)
        if added:
            campaign = campaign.evolve(now, target_count=number)
            change.campaigns.append(campaign)
        if change.callbacks:
            self.store.commit(change)
        replaced = sum(1 for item in phone_changes if item.replaced)
        logger.info(
            "campaign %s: %d targets added, %d already present, %d phone "
            "numbers replaced, %d kept because the target was dialing or ended",
            campaign_id,
            added,
            len(targets) - added,
            replaced,
            len(phone_changes) - replaced,
        )
        return AddedTargets(campaign, result, added, phone_changes)

    def _replace_phone(
        self, target: Callback, phone: str, now: datetime, change: Change
    ) -> Callback:
        """Add to ``change`` the pending ``target`` with its number replaced."""
        updated = target.evolve(now, phone_number=phone)
        change.callbacks.append(updated)
        change.event(
            now,
            journal.CALLBACK_UPDATED,
            target.callback_id,
            callback=updated.to_row(),
            reason="phone number changed by AddCampaignTargets",
        )
        logger.info(
            "campaign %s: target %s phone number changed from %s to %s",
            target.campaign_id,
            target.callback_id,
            mask_number(target.phone_number),
            mask_number(phone),
        )
        return updated

    def _target_callback(
        self,
        campaign: Campaign,
        number: int,
        target: CampaignTarget,
        phone: str,
        now: datetime,
    ) -> Callback:
        grade = campaign.kind.grade
        dedicated = target.dedicated_agent_id or None
        return Callback(
            callback_id=campaign.target_id(number),
            request_id=_target_request_id(campaign.campaign_id, target.customer_id),
            customer_id=target.customer_id,
            queue=campaign.queue,
            phone_number=phone,
            mode=CallbackMode.CAMPAIGN,
            entry_time=now,
            created_at=now,
            promised_time=None,
            window_end=None,
            not_before=campaign.start_time,
            expires_at=campaign.end_time,
            grade=grade,
            priority=self.callbacks.grade_rules.priorities.get(grade, 0),
            dedicated_agent_id=dedicated,
            # A campaign call waits for the dedicated agent up to the end,
            # because a promotion is not urgent and is the agent's to make.
            fallback_at=campaign.end_time if dedicated else None,
            ivr_history=tuple(target.context),
            language=target.language or "en",
            campaign_id=campaign.campaign_id,
            updated_at=now,
        )

    def list_targets(
        self,
        campaign_id: str,
        *,
        state: CallbackState | None = None,
        page_size: int = 100,
        page_token: str = "",
    ) -> tuple[list[Callback], str]:
        """Return a page of targets in target order, and the next page's
        token ("" after the last page)."""
        self.get(campaign_id)
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValidationError("page_size", page_size, f"send 1 to {MAX_PAGE_SIZE}")
        filters = (campaign_id, state.value if state else None)
        items = self.store.campaign_targets(
            campaign_id,
            state=filters[1],
            limit=page_size + 1,
            after_id=paging.after_id("ListCampaignTargets", page_token, *filters),
        )
        if len(items) > page_size:
            items = items[:page_size]
            last = items[-1].callback_id
            return items, paging.page_token("ListCampaignTargets", last, *filters)
        return items, ""

    def remove_target(
        self, campaign_id: str, customer_id: str, reason: str
    ) -> Callback:
        """Remove a customer from a campaign (an opt-out).

        The target ends ``CANCELLED``; during a dial the stop applies when
        the attempt ends without a connection. A target that already ended
        (called, skipped, removed) is returned unchanged, because nothing
        more will dial it.
        """
        self.get(campaign_id)
        stored_id = self.store.callback_for_request(
            _target_request_id(campaign_id, customer_id)
        )
        if stored_id is None:
            raise NotFoundError("campaign target", f"{campaign_id}/{customer_id}")
        target = self.callbacks.get(stored_id)
        if target.state.is_final:
            return target
        return self.callbacks.cancel(stored_id, reason or "removed from the campaign")

    # Contacts and outcomes

    def customer_reached_agent(
        self, customer_id: str, when: datetime
    ) -> list[Callback]:
        """Record that a customer reached an agent, and drop their pending
        targets of campaigns that started at or before ``when``.

        Does nothing while no campaign is running or paused, because only
        contacts after a campaign's start count.
        """
        active = {c.campaign_id: c for c in self.store.list_campaigns(_ACTIVE)}
        if not active:
            return []
        now = self.clock.now()
        change = Change(reached=[(customer_id, when)])
        dropped = []
        for target in self.store.open_targets_of(customer_id):
            campaign = active.get(target.campaign_id)
            if (
                campaign is None
                or target.state is not CallbackState.PENDING
                or when < campaign.started_at
            ):
                continue
            reason = f"customer reached an agent at {when.isoformat()}"
            dropped.append(self._skip(target, reason, now, change))
        self.store.commit(change)
        return dropped

    def report_outcome(self, attempt_id: str, outcome, **details) -> OutcomeResult:
        """``CallbackScheduler.report_outcome``, recording a connected
        customer as reached while a campaign is active."""
        result = self.callbacks.report_outcome(attempt_id, outcome, **details)
        completed = result.callback.state is CallbackState.COMPLETED
        if completed and self.store.list_campaigns(_ACTIVE):
            change = Change(reached=[(result.callback.customer_id, self.clock.now())])
            self.store.commit(change)
        return result

    def _skip(
        self, target: Callback, reason: str, now: datetime, change: Change
    ) -> Callback:
        updated = target.evolve(now, state=CallbackState.DROPPED, reason=reason)
        change.callbacks.append(updated)
        change.event(
            now,
            journal.CALLBACK_DROPPED,
            target.callback_id,
            callback=updated.to_row(),
            reason=reason,
        )
        logger.info(
            "campaign %s: target %s for %s skipped (%s)",
            target.campaign_id,
            target.callback_id,
            mask_number(target.phone_number),
            reason,
        )
        return updated

    # Release

    def due(
        self,
        now: datetime | None = None,
        *,
        free_agents: dict[str, int] | None = None,
        ready_agents: set[str] | frozenset[str] | None = None,
        waiting: dict[str, int] | None = None,
        released: Sequence[DialOrder] = (),
    ) -> list[DialOrder]:
        """Release campaign targets as dial orders; see the module docstring.

        Parameters
        ----------
        now : datetime or None
            Defaults to the clock.
        free_agents : dict[str, int] or None
            Free agents per queue, as passed to ``CallbackScheduler.due``
            in the same step; ``None`` trusts the predictor's capacity only.
        ready_agents : set of str or None
            Agents ready now; ``None`` assumes every agent ready.
        waiting : dict[str, int] or None
            Inbound callers waiting per queue; a queue with any gets no
            campaign call.
        released : list of DialOrder
            The callback orders released in this step, which took agents
            counted in ``free_agents``.
        """
        now = now or self.clock.now()
        self.finish_ended(now)
        running = [
            c
            for c in self.store.list_campaigns((CampaignState.RUNNING.value,))
            if c.start_time <= now < c.end_time
        ]
        running.sort(key=lambda c: (c.kind.rank, c.start_time, c.campaign_id))
        released_per_queue = Counter(order.target.queue for order in released)
        rooms: dict[str, float] = {}
        dialing = set(self.store.dialing_target_customers())
        change = Change()
        orders: list[DialOrder] = []
        for campaign in running:
            queue = campaign.queue
            if queue not in rooms:
                rooms[queue] = self._queue_room(
                    queue, now, free_agents, waiting, released_per_queue
                )
            in_flight = self.store.count_targets_in(
                campaign.campaign_id, (CallbackState.DIALING.value,)
            )
            room = min(rooms[queue], campaign.max_in_flight - in_flight)
            if room <= 0:
                continue
            issued = self._release_campaign(
                campaign, int(room), now, ready_agents, dialing, change
            )
            rooms[queue] -= len(issued)
            orders.extend(issued)
        if change.callbacks:
            self.store.commit(change)
        if orders:
            logger.debug("campaigns: %d calls released", len(orders))
        return orders

    def _queue_room(
        self,
        queue: str,
        now: datetime,
        free_agents: dict[str, int] | None,
        waiting: dict[str, int] | None,
        released_per_queue: Counter,
    ) -> float:
        """Campaign calls ``queue`` can take now (see the module docstring)."""
        callbacks = self.callbacks
        if not callbacks.calendar_for(queue).is_open(now):
            return 0
        if waiting and waiting.get(queue, 0) > 0:
            return 0
        if self.store.due_callbacks(queue, callbacks.due_by(now), 1):
            return 0
        admin_room, spare = callbacks.planner.release_room(queue, now)
        room = min(admin_room, spare)
        if free_agents is not None and queue in free_agents:
            room = min(room, free_agents[queue] - released_per_queue[queue])
        return max(room, 0)

    def _release_campaign(
        self,
        campaign: Campaign,
        room: int,
        now: datetime,
        ready_agents,
        dialing: set[str],
        change: Change,
    ) -> list[DialOrder]:
        orders = []
        due = self.store.due_targets(
            campaign.campaign_id, now, room + LOOKAHEAD_TARGETS
        )
        for target in due:
            if len(orders) >= room:
                break
            reason = self._skip_reason(target, campaign)
            if reason:
                self._skip(target, reason, now, change)
                continue
            if target.customer_id in dialing:
                continue
            dial_target = self.callbacks.dial_target(target, now, ready_agents)
            if dial_target is None:
                continue
            order = self.callbacks.issue(target, dial_target, now, change)
            dialing.add(target.customer_id)
            orders.append(order)
        return orders

    def _skip_reason(self, target: Callback, campaign: Campaign) -> str:
        """Return why a due target must not be called, or ""."""
        open_callbacks = self.store.open_callbacks_of(target.customer_id)
        if open_callbacks:
            other = open_callbacks[0]
            return (
                f"customer has open callback {other.callback_id} in queue {other.queue}"
            )
        reached = self.store.last_reached(target.customer_id)
        if reached is not None and reached >= campaign.started_at:
            return (
                f"customer reached an agent at {reached.isoformat()}, after the "
                "campaign started"
            )
        return ""

    def finish_ended(self, now: datetime | None = None) -> int:
        """Finish campaigns past their end time, and running campaigns whose
        every target ended.

        Pending targets past the end expire in ``CallbackScheduler.housekeep``,
        which runs first, without an SMS. ``due`` runs this first; the
        coordinator runs it alone while no gateway is registered. Returns
        how many campaigns it finished.
        """
        now = now or self.clock.now()
        finished = 0
        for campaign in self.store.list_campaigns(
            (CampaignState.DRAFT.value, *_ACTIVE)
        ):
            if now >= campaign.end_time:
                reason = "end time passed"
            elif campaign.state is CampaignState.RUNNING and campaign.target_count:
                open_states = (CallbackState.PENDING.value, CallbackState.DIALING.value)
                if self.store.count_targets_in(campaign.campaign_id, open_states):
                    continue
                reason = "every target ended"
            else:
                continue
            self._change_state(
                campaign,
                CampaignState.FINISHED,
                reason,
                journal.CAMPAIGN_FINISHED,
            )
            finished += 1
        return finished


def _check_not_ended(campaign: Campaign, now: datetime) -> None:
    """Raise ``InvalidStateError`` once ``campaign`` is past its end time.

    The state may still read running or paused until the next dispatch step
    finishes the campaign, and no dispatch step runs without a gateway.
    """
    if now >= campaign.end_time:
        raise InvalidStateError(
            f"campaign {campaign.campaign_id} ended at "
            f"{campaign.end_time.isoformat()}; create a new campaign with a later "
            "end_time"
        )


def _target_request_id(campaign_id: str, customer_id: str) -> str:
    """Return the request id under which a customer's target is stored, so
    one customer has one target per campaign."""
    return f"campaign:{campaign_id}:{customer_id}"


def _fields_of(item) -> tuple:
    """Return the fields that tell two create requests of a campaign apart."""
    return (
        item.name.strip() if isinstance(item.name, str) else item.name,
        item.kind,
        item.queue,
        item.start_time,
        item.end_time,
        item.max_in_flight,
        item.sms_text,
    )

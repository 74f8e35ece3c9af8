"""AgentService: agents, their groups, skills, dedicated customers and states."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

from callsure.actors.convert import event_time_of, to_timestamp
from callsure.actors.errors import translate_errors
from callsure.actors.services.callbacks import page_size_of
from callsure.engine.agents import AgentState
from callsure.engine.callbacks import MAX_ID_LENGTH, check_length
from callsure.engine.exceptions import NotFoundError, ValidationError
from callsure.v1 import agent_pb2, agent_pb2_grpc

AGENT_PREFIX = "agents/"
# Group names become actor names and file names, so they stay plain.
GROUP_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")
STATE_FROM_PROTO = {
    agent_pb2.AGENT_STATE_READY: AgentState.READY,
    agent_pb2.AGENT_STATE_BUSY: AgentState.BUSY,
    agent_pb2.AGENT_STATE_WRAP_UP: AgentState.WRAP_UP,
    agent_pb2.AGENT_STATE_NOT_READY: AgentState.NOT_READY,
    agent_pb2.AGENT_STATE_LOGGED_OUT: AgentState.LOGGED_OUT,
}
STATE_TO_PROTO = {state: number for number, state in STATE_FROM_PROTO.items()}


def parse_agent_name(name: str, field: str) -> str:
    agent_id = name.removeprefix(AGENT_PREFIX)
    if not name.startswith(AGENT_PREFIX) or not agent_id.strip() or "/" in agent_id:
        raise ValidationError(field, name, "send a name of the form agents/{agent}")
    # ContactService names the agent of an ANSWERED event in these bounds.
    check_length(field, agent_id, MAX_ID_LENGTH)
    return agent_id


def check_agent_texts(agent) -> None:
    """Check the skills and dedicated customers of an ``Agent`` message."""
    for field in ("skills", "dedicated_customer_ids"):
        for index, value in enumerate(getattr(agent, field)):
            path = f"agent.{field}[{index}]"
            if not value.strip():
                raise ValidationError(path, value, "send a non-empty value")
            check_length(path, value, MAX_ID_LENGTH)


def check_page_token(token: str) -> None:
    """Accept only a ``next_page_token`` of ListAgents, which is an agent name."""
    if token and not (token.startswith(AGENT_PREFIX) and len(token) <= 256):
        raise ValidationError(
            "page_token",
            token[:32],
            "send the next_page_token of a previous ListAgents reply, or nothing",
        )


def agent_to_proto(agent, group: str) -> agent_pb2.Agent:
    message = agent_pb2.Agent(
        name=AGENT_PREFIX + agent.agent_id,
        group=group,
        skills=sorted(agent.skills),
        dedicated_customer_ids=sorted(agent.dedicated_customers),
        state=STATE_TO_PROTO[agent.state],
    )
    if agent.since is not None:
        message.state_change_time.CopyFrom(to_timestamp(agent.since))
    return message


class AgentServicer(agent_pb2_grpc.AgentServiceServicer):
    """Route agent calls to the agent pool of each group."""

    def __init__(self, actors):
        self._actors = actors
        self._group_of: dict[str, str] = {}

    async def _find_group(self, agent_id: str) -> str:
        group = self._group_of.get(agent_id)
        if group is not None:
            return group
        groups = list(self._actors.pools)
        found = await asyncio.gather(
            *(self._actors.pools[g].has_agent.remote(agent_id) for g in groups)
        )
        for group, present in zip(groups, found, strict=True):
            if present:
                self._group_of[agent_id] = group
                return group
        raise NotFoundError("agent", agent_id)

    async def _tell_shards(self, agent_id: str, assigned, released) -> None:
        """Record the dedicated agent in the customers' shards, which give it
        to each new callback of those customers."""
        updates = [(customer, agent_id) for customer in assigned]
        updates += [(customer, "") for customer in released]
        shards = self._actors.shards
        await asyncio.gather(
            *(
                shards[self._actors.shard_index(customer)].set_attributes.remote(
                    customer, {}, dedicated
                )
                for customer, dedicated in updates
            )
        )

    async def _check_dedicated(self, agent_id: str, customers) -> None:
        """Reject a customer who already has another dedicated agent, because
        a callback goes to one dedicated agent."""
        requested = set(customers)
        if not requested:
            return
        groups = list(self._actors.pools)
        rosters = await asyncio.gather(
            *(self._actors.pools[group].agents.remote() for group in groups)
        )
        for agent in (agent for roster in rosters for agent in roster):
            claimed = requested & agent.dedicated_customers
            if agent.agent_id == agent_id or not claimed:
                continue
            customer = min(claimed)
            index = list(customers).index(customer)
            raise ValidationError(
                f"agent.dedicated_customer_ids[{index}]",
                customer,
                f"the customer's dedicated agent is {AGENT_PREFIX}{agent.agent_id}; "
                "remove the customer there first",
            )

    async def UpdateAgent(self, request, context):
        async with translate_errors(context, "UpdateAgent"):
            agent_id = parse_agent_name(request.agent.name, "agent.name")
            group = request.agent.group
            if not GROUP_PATTERN.fullmatch(group):
                raise ValidationError(
                    "agent.group",
                    group,
                    "send 1 to 64 letters, digits, '.', '_' or '-', such as billing",
                )
            check_agent_texts(request.agent)
            try:
                known = await self._find_group(agent_id)
            except NotFoundError:
                if not request.allow_missing:
                    raise
                known = None
            if known is not None and known != group:
                raise ValidationError(
                    "agent.group",
                    group,
                    f"the agent belongs to {known}; an agent stays in one group",
                )
            await self._check_dedicated(agent_id, request.agent.dedicated_customer_ids)
            pool = await self._actors.pool_for(group)
            agent, released = await pool.update_agent.remote(
                agent_id,
                frozenset(request.agent.skills),
                frozenset(request.agent.dedicated_customer_ids),
                request.allow_missing,
                datetime.now(UTC),
            )
            self._group_of[agent_id] = group
            await self._tell_shards(agent_id, agent.dedicated_customers, released)
            return agent_pb2.UpdateAgentResponse(agent=agent_to_proto(agent, group))

    async def ReportAgentState(self, request, context):
        async with translate_errors(context, "ReportAgentState"):
            agent_id = parse_agent_name(request.agent, "agent")
            if request.state not in STATE_FROM_PROTO:
                raise ValidationError("state", request.state, "send an AgentState")
            now = datetime.now(UTC)
            when = event_time_of(request, "event_time", "event_time", now) or now
            group = await self._find_group(agent_id)
            agent = await self._actors.pools[group].set_state.remote(
                agent_id, STATE_FROM_PROTO[request.state], when
            )
            # The pool ignores an event older than the agent's state, so the
            # predictor gets the state the pool kept, not the one reported.
            await self._actors.coordinator.record_agent_state.remote(
                group, agent_id, agent.state, when
            )
            return agent_pb2.ReportAgentStateResponse(
                agent=agent_to_proto(agent, group)
            )

    async def ListAgents(self, request, context):
        async with translate_errors(context, "ListAgents"):
            page_size = page_size_of(request.page_size)
            check_page_token(request.page_token)
            states = set()
            for number in request.states:
                if number not in STATE_FROM_PROTO:
                    raise ValidationError("states", number, "send AgentState values")
                states.add(STATE_FROM_PROTO[number])
            groups = [request.group] if request.group else sorted(self._actors.pools)
            groups = [group for group in groups if group in self._actors.pools]
            rosters = await asyncio.gather(
                *(self._actors.pools[group].agents.remote() for group in groups)
            )
            items = sorted(
                (
                    (AGENT_PREFIX + agent.agent_id, agent, group)
                    for group, agents in zip(groups, rosters, strict=True)
                    for agent in agents
                    if not states or agent.state in states
                ),
                key=lambda item: item[0],
            )
            items = [item for item in items if item[0] > request.page_token]
            page = items[:page_size]
            next_token = page[-1][0] if len(items) > page_size else ""
            return agent_pb2.ListAgentsResponse(
                agents=[agent_to_proto(agent, group) for _, agent, group in page],
                next_page_token=next_token,
            )

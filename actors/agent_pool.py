"""The ``AgentPool`` actor: the agents of one group (one queue).

Owns one ``AgentRoster``: agent states fed by the CTI, skills, dedicated
VIP customers, outbound agents blended in during a surge, and
reservations of agents for callbacks in agent-first mode. What survives a
restart: the roster, from a snapshot file beside the store rewritten at
most every ``SNAPSHOT_INTERVAL_S`` seconds after a change and on
``close``. A state change of the last interval before a crash can be lost;
the CTI's next report corrects it.

Idempotency: ``set_state`` ignores an event older than the agent's current
state, so a replayed CTI event changes nothing. ``update_agent``,
``reserve`` (by reservation id) and ``release`` are idempotent.
"""

from __future__ import annotations

import logging

import ray

# Registers the pickling of engine errors sent back through Ray.
import callsure.actors.errors  # noqa: F401
from callsure.actors.snapshot import SnapshotFile
from callsure.engine.agents import AgentRoster, AgentState
from callsure.engine.exceptions import NotFoundError

logger = logging.getLogger(__name__)

SNAPSHOT_INTERVAL_S = 1.0
POOL_NAME_PREFIX = "callsure-agent-pool-"


@ray.remote(max_restarts=-1, max_task_retries=0)
class AgentPool:
    """A Ray actor hosting one ``AgentRoster``; see the module docstring."""

    def __init__(self, group: str, snapshot_path: str):
        self._snapshot = SnapshotFile(
            snapshot_path, lambda: self._roster.to_state(), SNAPSHOT_INTERVAL_S
        )
        state = self._snapshot.load()
        self._roster = (
            AgentRoster(group) if state is None else AgentRoster.from_state(state)
        )
        logger.info("agent pool %s: %d agents loaded", group, len(self._roster.agents))

    async def update_agent(
        self,
        agent_id: str,
        skills,
        dedicated_customers,
        allow_missing: bool,
        now,
    ):
        """Replace an agent's skills and dedicated customers; create it
        (logged out) when ``allow_missing``.

        Returns
        -------
        tuple
            The agent after the change, and the customers that were
            dedicated to it before but no longer are.
        """
        if agent_id not in self._roster.agents:
            if not allow_missing:
                raise NotFoundError("agent", agent_id)
            self._roster.set_state(agent_id, AgentState.LOGGED_OUT, now)
        previous = self._roster.agent(agent_id).dedicated_customers
        self._roster.set_skills(agent_id, skills)
        agent = self._roster.assign_dedicated(agent_id, dedicated_customers)
        self._snapshot.changed()
        return agent, previous - agent.dedicated_customers

    async def set_state(self, agent_id: str, state: AgentState, when):
        agent = self._roster.set_state(agent_id, state, when)
        self._snapshot.changed()
        return agent

    async def agents(self) -> list:
        return sorted(self._roster.agents.values(), key=lambda agent: agent.agent_id)

    async def has_agent(self, agent_id: str) -> bool:
        return agent_id in self._roster.agents

    async def availability(self, now) -> tuple[int, frozenset]:
        """Free agents and the ids of ready agents, for the scheduler's release."""
        return self._roster.free_count(now), self._roster.ready_agents(now)

    async def dedicated_agent_for(self, customer_id: str):
        return self._roster.dedicated_agent_for(customer_id)

    async def reserve(self, reservation_id: str, callback_id: str, until, now, **kw):
        reservation = self._roster.reserve(
            reservation_id, callback_id, until, now, **kw
        )
        self._snapshot.changed()
        return reservation

    async def release(self, reservation_id: str) -> None:
        self._roster.release(reservation_id)
        self._snapshot.changed()

    async def close(self) -> None:
        await self._snapshot.save_now()

"""Agents of one group: states from the CTI, skills, reservations for callbacks.

An ``AgentRoster`` is the state of one agent group (one queue). The CTI
feeds agent states. In agent-first mode, each dial order reserves an
agent before the gateway dials. Outbound agents blended in during a surge
count as free for callbacks. ``free_count`` and
``ready_agents`` are the inputs of ``CallbackScheduler.due``.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field, replace
from datetime import datetime

from callsure.engine.callbacks import from_epoch, to_epoch
from callsure.engine.exceptions import InvalidStateError, NotFoundError, ValidationError

logger = logging.getLogger(__name__)


class AgentState(enum.Enum):
    READY = "ready"
    BUSY = "busy"
    WRAP_UP = "wrap_up"
    NOT_READY = "not_ready"
    LOGGED_OUT = "logged_out"


@dataclass(frozen=True)
class Reservation:
    """An agent held for one callback attempt (agent-first mode).

    ``reservation_id`` is the attempt id, so a replayed reservation of the
    same attempt returns the same agent.
    """

    reservation_id: str
    agent_id: str
    callback_id: str
    expires_at: datetime


@dataclass(frozen=True)
class Agent:
    """One agent's state in the roster.

    Attributes
    ----------
    since : datetime
        When the current state began (the CTI event time).
    outbound : bool
        An outbound (campaign) agent; counts for callbacks only while
        ``blended`` is true.
    """

    agent_id: str
    state: AgentState = AgentState.LOGGED_OUT
    since: datetime | None = None
    skills: frozenset[str] = frozenset()
    dedicated_customers: frozenset[str] = frozenset()
    outbound: bool = False
    blended: bool = False


@dataclass
class AgentRoster:
    """The agents of one group.

    Parameters
    ----------
    group : str
        The queue the agents serve.
    """

    group: str
    agents: dict[str, Agent] = field(default_factory=dict)
    reservations: dict[str, Reservation] = field(default_factory=dict)

    def agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise NotFoundError("agent", agent_id) from None

    # CTI feed

    def set_state(self, agent_id: str, state: AgentState, when: datetime) -> Agent:
        """Apply a CTI state change; an older event than the current state's
        is ignored, because CTI links may deliver out of order."""
        if not agent_id:
            raise ValidationError("agent_id", agent_id, "send a non-empty agent id")
        if when.tzinfo is None:
            raise ValidationError(
                "when", when.isoformat(), "send a timezone-aware time"
            )
        current = self.agents.get(agent_id) or Agent(agent_id)
        if current.since is not None and when < current.since:
            logger.debug(
                "agent %s: stale %s event at %s ignored", agent_id, state.value, when
            )
            return current
        updated = replace(current, state=state, since=when)
        self.agents[agent_id] = updated
        if state is not AgentState.READY:
            self._drop_reservations_of(agent_id)
        return updated

    def login(
        self,
        agent_id: str,
        when: datetime,
        *,
        skills: tuple[str, ...] | frozenset[str] = (),
        outbound: bool = False,
    ) -> Agent:
        """Log an agent in, not ready until the CTI reports ready."""
        agent = self.set_state(agent_id, AgentState.NOT_READY, when)
        agent = replace(agent, skills=frozenset(skills), outbound=outbound)
        self.agents[agent_id] = agent
        return agent

    def logout(self, agent_id: str, when: datetime) -> Agent:
        return self.set_state(agent_id, AgentState.LOGGED_OUT, when)

    def set_skills(self, agent_id: str, skills) -> Agent:
        agent = replace(self.agent(agent_id), skills=frozenset(skills))
        self.agents[agent_id] = agent
        return agent

    def assign_dedicated(self, agent_id: str, customer_ids) -> Agent:
        """Make ``agent_id`` the dedicated agent of the given VIP customers."""
        agent = replace(
            self.agent(agent_id), dedicated_customers=frozenset(customer_ids)
        )
        self.agents[agent_id] = agent
        return agent

    def dedicated_agent_for(self, customer_id: str) -> str | None:
        for agent in self.agents.values():
            if customer_id in agent.dedicated_customers:
                return agent.agent_id
        return None

    def blend(self, agent_id: str, blended: bool = True) -> Agent:
        """Let an outbound agent take callbacks (surge) or stop it."""
        agent = self.agent(agent_id)
        if not agent.outbound:
            raise InvalidStateError(
                f"agent {agent_id} is an inbound agent; only outbound agents blend"
            )
        agent = replace(agent, blended=blended)
        self.agents[agent_id] = agent
        return agent

    # Capacity

    def _available(self, agent: Agent, skill: str | None) -> bool:
        if agent.state is not AgentState.READY:
            return False
        if agent.outbound and not agent.blended:
            return False
        if skill is not None and skill not in agent.skills:
            return False
        return all(r.agent_id != agent.agent_id for r in self.reservations.values())

    def free_count(self, now: datetime, skill: str | None = None) -> int:
        """Ready agents without a live reservation (blended outbound included)."""
        self.expire_reservations(now)
        return sum(1 for a in self.agents.values() if self._available(a, skill))

    def ready_agents(self, now: datetime) -> frozenset[str]:
        self.expire_reservations(now)
        return frozenset(
            a.agent_id for a in self.agents.values() if self._available(a, None)
        )

    # Reservations (agent-first mode)

    def reserve(
        self,
        reservation_id: str,
        callback_id: str,
        until: datetime,
        now: datetime,
        *,
        agent_id: str | None = None,
        skill: str | None = None,
    ) -> Reservation | None:
        """Hold a ready agent for one attempt; ``None`` when none is free.

        Idempotent by ``reservation_id``. With ``agent_id`` only that agent
        is considered (a VIP's dedicated agent); otherwise the agent ready
        the longest is chosen.
        """
        existing = self.reservations.get(reservation_id)
        if existing is not None and existing.expires_at > now:
            return existing
        self.expire_reservations(now)
        candidates = [
            a
            for a in self.agents.values()
            if self._available(a, skill)
            and (agent_id is None or a.agent_id == agent_id)
        ]
        if not candidates:
            return None
        chosen = min(candidates, key=lambda a: (a.since, a.agent_id))
        reservation = Reservation(reservation_id, chosen.agent_id, callback_id, until)
        self.reservations[reservation_id] = reservation
        return reservation

    def release(self, reservation_id: str) -> None:
        """End a reservation (idempotent)."""
        self.reservations.pop(reservation_id, None)

    def expire_reservations(self, now: datetime) -> list[Reservation]:
        expired = [r for r in self.reservations.values() if r.expires_at <= now]
        for reservation in expired:
            del self.reservations[reservation.reservation_id]
        return expired

    def _drop_reservations_of(self, agent_id: str) -> None:
        for key in [k for k, r in self.reservations.items() if r.agent_id == agent_id]:
            del self.reservations[key]

    # Restart

    def to_state(self) -> dict:
        return {
            "group": self.group,
            "agents": [
                {
                    "agent_id": a.agent_id,
                    "state": a.state.value,
                    "since": to_epoch(a.since),
                    "skills": sorted(a.skills),
                    "dedicated_customers": sorted(a.dedicated_customers),
                    "outbound": a.outbound,
                    "blended": a.blended,
                }
                for a in self.agents.values()
            ],
            "reservations": [
                [r.reservation_id, r.agent_id, r.callback_id, to_epoch(r.expires_at)]
                for r in self.reservations.values()
            ],
        }

    @classmethod
    def from_state(cls, state: dict) -> AgentRoster:
        roster = cls(state["group"])
        for item in state["agents"]:
            roster.agents[item["agent_id"]] = Agent(
                agent_id=item["agent_id"],
                state=AgentState(item["state"]),
                since=from_epoch(item["since"]),
                skills=frozenset(item["skills"]),
                dedicated_customers=frozenset(item["dedicated_customers"]),
                outbound=item["outbound"],
                blended=item["blended"],
            )
        for reservation_id, agent_id, callback_id, expires in state["reservations"]:
            roster.reservations[reservation_id] = Reservation(
                reservation_id, agent_id, callback_id, from_epoch(expires)
            )
        return roster

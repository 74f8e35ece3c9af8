"""Agents of the demo's switch reserved for callbacks.

The callback's customer keeps the original place in the queue, so the
switch reserves a free agent of the group for a callback being dialed
and for a callback whose place has come. A place has come when a promised
time is due, or when the caller of a "when an agent is free" promise
entered the queue before the oldest live caller. The reserved agent
stays free, because the coordinator releases callbacks only to free
agents. A reservation ends when the callback's agent leg arrives, the
attempt ends without a person, or after ``HOLD_LIMIT_S``, and each
attempt gets one. While a live caller has waited longer than the
service-level time, at least one agent of the group is never reserved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# A free agent reserved for a callback goes back to live callers after
# this long without the callback's agent leg arriving. The release takes
# about 0.5 s. Ringing (1 to 4 s, at most the demo's 5 s ring timeout) and
# answer detection (about 2.5 s) are not compressed.
HOLD_LIMIT_S = 8.0


@dataclass(frozen=True)
class CallbackNeed:
    """A callback of a group that wants an agent now.

    Attributes
    ----------
    attempt_id : str
        ``<callback_id>/<number>``: the attempt being dialed, or the next
        attempt of a due promise.
    phone_number : str
    dialing : bool
        The gateway is dialing the attempt.
    timed : bool
        The promise is for a time (predicted or keyed), not "when an agent
        is free".
    agent_id : str
        The VIP's dedicated agent who takes the callback; "" for any agent
        of the group.
    """

    attempt_id: str
    phone_number: str
    dialing: bool
    timed: bool = False
    agent_id: str = ""


class Reservations:
    """Agents reserved per callback attempt, as the module docstring describes.

    Agents are the switch's ``Agent`` records: a reservation sets their
    ``held_since``, and only ready agents are reserved.
    """

    def __init__(self):
        # Number -> when that caller entered the queue, for the place of
        # its callback.
        self.entered_at: dict[str, float] = {}
        # Attempt id -> the agent reserved for it, and since when.
        self._holds: dict[str, tuple[object, float]] = {}
        # Attempts whose reservation ended. None gets a second one.
        self._spent: set[str] = set()

    def __len__(self) -> int:
        return len(self._holds)

    def update(self, agents, needs, head_entered_at, late: bool, now: float) -> None:
        """Reserve agents of one group for its callbacks at ``now``.

        ``agents`` are every agent of the group, ``needs`` its
        ``CallbackNeed`` list, ``head_entered_at`` when the oldest live
        caller entered the queue (``None`` for none), and ``late`` whether
        that caller has waited past the service-level time.
        """
        by_attempt = {need.attempt_id: need for need in needs}
        members = {id(agent) for agent in agents}
        for attempt_id, (agent, since) in list(self._holds.items()):
            if id(agent) not in members:
                continue
            expired = now - since > HOLD_LIMIT_S
            if attempt_id in by_attempt and agent.ready and not expired:
                continue
            self.end(attempt_id)
            if expired:
                logger.debug(
                    "desk: reservation of %s for %s expired", agent.agent_id, attempt_id
                )
        limit = len(agents) - 1 if late else len(agents)
        held_attempts = [
            key for key, (agent, _) in self._holds.items() if id(agent) in members
        ]
        # When a caller becomes late while every agent is reserved, the
        # newest reservation ends, and its callback may reserve again later.
        for attempt_id in held_attempts[limit:]:
            self._holds.pop(attempt_id)[0].held_since = None
        count = len(held_attempts[:limit])
        for need in self._in_callback_order(by_attempt.values(), head_entered_at):
            if count >= limit:
                return
            agent = _agent_to_reserve(agents, need)
            if agent is None:
                continue
            agent.held_since = now
            self._holds[need.attempt_id] = (agent, now)
            count += 1

    def take(self, attempt_id: str):
        """End the reservation of ``attempt_id`` and return its agent if ready."""
        hold = self._holds.get(attempt_id)
        self.end(attempt_id)
        if hold is not None and hold[0].ready:
            return hold[0]
        return None

    def forget_agent(self, agent) -> None:
        """Drop the reservations of ``agent``, who took another callback, so
        that their callbacks may reserve again."""
        for attempt_id, (held, _) in list(self._holds.items()):
            if held is agent:
                del self._holds[attempt_id]
        agent.held_since = None

    def end(self, attempt_id: str) -> None:
        hold = self._holds.pop(attempt_id, None)
        self._spent.add(attempt_id)
        if hold is not None:
            hold[0].held_since = None

    def _in_callback_order(self, needs, head_entered_at) -> list[CallbackNeed]:
        """Order the callbacks whose place has come, those being dialed first."""
        dialing, timed, asap = [], [], []
        for need in needs:
            if need.attempt_id in self._holds or need.attempt_id in self._spent:
                continue
            if need.dialing:
                dialing.append(need)
            elif need.timed:
                timed.append(need)
            else:
                entered = self.entered_at.get(need.phone_number)
                # A promise taken "when an agent is free" keeps the caller's
                # place, so it reserves no agent while a live caller who
                # entered earlier waits.
                if head_entered_at is None or (
                    entered is not None and entered < head_entered_at
                ):
                    asap.append(need)
        asap.sort(key=lambda need: self.entered_at.get(need.phone_number, 0.0))
        return dialing + timed + asap


def _agent_to_reserve(agents, need: CallbackNeed):
    if need.agent_id:
        for agent in agents:
            if agent.agent_id == need.agent_id:
                return agent if agent.ready and agent.held_since is None else None
        return None
    for agent in agents:
        if agent.ready and agent.held_since is None:
            return agent
    return None

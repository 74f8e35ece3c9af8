"""Translation of the CTI feed into the prediction model's queue events.

The ContactService reports what happens to one contact (arrived, queued,
abandoned, answered, ended) and the AgentService what an agent's state
is. The prediction model's ``QueueState`` counts callers joining and
leaving a queue and agents starting and ending services. ``ContactFeed``
remembers each open contact (its queue, whether it waits or is served and
by whom), so that an ANSWERED or ENDED event, which need not repeat the
queue, becomes the right ``QueueEvent`` of the right queue:

=========  ===============================  ==================================
contact    while waiting                    otherwise
=========  ===============================  ==================================
QUEUED     nothing (a repeat)               JOIN
ABANDONED  LEAVE, not served                nothing
ANSWERED   LEAVE served, SERVICE_START      SERVICE_START (answered at once)
ENDED      LEAVE, not served                SERVICE_END when in service
=========  ===============================  ==================================

A QUEUED event naming another queue than the one the contact waits in is
a transfer: the contact leaves the first queue as served (for patience a
censored wait, not an abandon) and joins the second.

NOTE: a contact whose ABANDONED or ENDED event never arrives stays
waiting or in service forever and keeps counting as ahead of new callers,
because the feed carries no time-out; the switch must report every end.
The feed carries no call type either, so every caller has the model's
default type.
"""

from __future__ import annotations

from callsure.engine.agents import AgentState
from callsure.engine.customers import ContactKind
from callsure.engine.prediction.state import (
    AGENT_OFF,
    AGENT_ON,
    JOIN,
    LEAVE,
    SERVICE_END,
    SERVICE_START,
    QueueEvent,
)

ARRIVED, WAITING, SERVING = "arrived", "waiting", "serving"
# Agent states in which an agent counts as on duty in its group's queue.
ON_DUTY = frozenset({AgentState.READY, AgentState.BUSY, AgentState.WRAP_UP})


class ContactFeed:
    """Open contacts and the queue events their next event makes.

    Each contact is stored as ``[key, queue, phase, agent]``: ``key`` is
    the integer call id of its queue events, ``phase`` one of ``ARRIVED``,
    ``WAITING`` and ``SERVING``.
    """

    def __init__(self) -> None:
        self.contacts: dict[str, list] = {}
        self.next_key = 1

    def __len__(self) -> int:
        return len(self.contacts)

    def _open(self, contact_id: str, queue: str) -> list:
        contact = self.contacts.get(contact_id)
        if contact is None:
            contact = [self.next_key, queue, ARRIVED, ""]
            self.next_key += 1
            self.contacts[contact_id] = contact
        elif queue and not contact[1]:
            contact[1] = queue
        return contact

    def contact_events(
        self,
        contact_id: str,
        kind: ContactKind,
        time: float,
        *,
        queue: str = "",
        agent: str = "",
        priority: int = 0,
    ) -> list[tuple[str, QueueEvent]]:
        """Record one contact event; return the ``(queue, QueueEvent)`` pairs
        it makes, in the order to apply them.

        ``time`` is in seconds since the epoch; ``priority`` is the
        customer's, for a JOIN.
        """
        if kind in (ContactKind.ABANDONED, ContactKind.ENDED):
            contact = self.contacts.pop(contact_id, None)
            if contact is None:
                return []
            key, known_queue, phase, served_by = contact
            if phase == WAITING:
                return [(known_queue, QueueEvent(time, LEAVE, key, served=False))]
            if phase == SERVING and kind is ContactKind.ENDED:
                return [
                    (known_queue, QueueEvent(time, SERVICE_END, key, agent=served_by))
                ]
            return []

        contact = self._open(contact_id, queue)
        key, known_queue, phase, _ = contact
        if kind is ContactKind.QUEUED:
            return self._queued(contact, queue, time, priority)
        if kind is ContactKind.ANSWERED and known_queue and phase != SERVING:
            contact[2], contact[3] = SERVING, agent
            start = QueueEvent(time, SERVICE_START, key, agent=agent)
            if phase == WAITING:
                leave = QueueEvent(time, LEAVE, key, served=True)
                return [(known_queue, leave), (known_queue, start)]
            return [(known_queue, start)]
        return []

    def _queued(
        self, contact: list, queue: str, time: float, priority: int
    ) -> list[tuple[str, QueueEvent]]:
        key, known_queue, phase, _ = contact
        if phase == WAITING and known_queue == queue:
            return []
        events = []
        if phase == WAITING:
            events.append((known_queue, QueueEvent(time, LEAVE, key, served=True)))
        contact[1], contact[2] = queue, WAITING
        events.append((queue, QueueEvent(time, JOIN, key, priority=priority)))
        return events

    @staticmethod
    def agent_event(agent_id: str, state: AgentState, time: float) -> QueueEvent:
        """Return the ``QueueEvent`` of an agent's state change."""
        kind = AGENT_ON if state in ON_DUTY else AGENT_OFF
        return QueueEvent(time, kind, agent=agent_id)

    def to_state(self) -> dict:
        return {"contacts": self.contacts, "next_key": self.next_key}

    def restore(self, plain: dict) -> None:
        self.contacts = {k: list(v) for k, v in plain["contacts"].items()}
        self.next_key = plain["next_key"]

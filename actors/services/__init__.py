"""gRPC servicers: each RPC becomes messages to the Ray actors.

A servicer validates the request's shape, converts it with
``callsure.actors.convert``, awaits the actor's reply and converts back.
Errors leave through ``callsure.actors.errors.translate_errors``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Servicers:
    """One servicer per service of the API, as ``start_server`` expects."""

    callback: object
    prediction: object
    contact: object
    agent: object
    admin: object
    event: object
    campaign: object


def build_servicers(actors) -> Servicers:
    """Create every servicer around the actor handles in ``actors``."""
    from callsure.actors.services.admin import AdminServicer
    from callsure.actors.services.agents import AgentServicer
    from callsure.actors.services.callbacks import CallbackServicer
    from callsure.actors.services.campaigns import CampaignServicer
    from callsure.actors.services.contacts import ContactServicer
    from callsure.actors.services.events import EventServicer
    from callsure.actors.services.prediction import PredictionServicer

    return Servicers(
        callback=CallbackServicer(actors),
        prediction=PredictionServicer(actors),
        contact=ContactServicer(actors),
        agent=AgentServicer(actors),
        admin=AdminServicer(actors),
        event=EventServicer(actors),
        campaign=CampaignServicer(actors),
    )

"""Settings of a replay: the offer, the customer's behaviour, the engine's policy."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from callsure.engine.exceptions import ValidationError


@dataclass(frozen=True)
class ReplayOptions:
    """Parameters of one replay; every probability is drawn with ``seed``.

    Attributes
    ----------
    seed : int
        Seed of every random draw (patience, acceptance, dial results).
    threshold_s : float
        A callback is offered when the predicted wait exceeds this.
    offer_quantile : float
        Quantile of the predicted wait compared with ``threshold_s``.
    accept_probability : float
        Probability that a caller accepts one offer of a callback.
    reoffer_s : float
        A caller who declined and still waits is offered again after this
        many seconds, while the predicted wait still exceeds the
        threshold, as queue announcements repeat; 0 offers once only.
    max_offers : int
        Offers to one caller at most, the first included.
    abandon_callbacks : bool
        Promise a callback to every identified caller who abandons, without
        asking (the customer may still not answer the dial).
    answer_probability : float
        Probability that the customer answers a callback dial.
    redial_while_pending : float
        Probability that a customer whose callback is pending redials anyway
        at the time the log shows them redialing.
    promise_quantile : float
        Quantile of the predicted wait used as the promised time
        (``PromisePolicy.predicted_quantile``).
    window_s : float
        Length of the announced window after the promised time; a callback
        is kept when an agent takes it inside the window.
    callback_patience_s : float
        How long a customer who answered a callback waits for an agent
        before hanging up.
    service_level_s : float
        Answer-time target of the reported service level.
    service_level_target : float
        Share of inbound callers the predictor keeps within
        ``service_level_s`` when it computes callback capacity. The
        default is near the share the bank reached in February 1999
        (about 60 % in the baseline replay), so callbacks get the agent
        time the center had beyond its usual service level.
    warmup_days : int
        Days of the log before the replayed day fed to the predictor first.
    poll_s : float
        Interval at which due promises held back are checked again.
    booking_horizon_s : float
        How far ahead a promise may be booked.
    agent_first : bool
        Dial in ``DialMode.AGENT_FIRST``: a released callback takes an idle
        agent first, who waits while the customer's phone rings, so a
        customer who answers is connected at once. ``False`` (the default)
        dials first (``CUSTOMER_FIRST``) and the answered customer waits
        for the next free agent; it kept more promises on the busy days
        of the real log (bench/RESULTS.md).
    """

    seed: int = 0
    threshold_s: float = 60.0
    offer_quantile: float = 0.5
    accept_probability: float = 0.6
    reoffer_s: float = 60.0
    max_offers: int = 3
    abandon_callbacks: bool = True
    answer_probability: float = 0.85
    redial_while_pending: float = 0.05
    promise_quantile: float = 0.75
    window_s: float = 300.0
    callback_patience_s: float = 180.0
    service_level_s: float = 20.0
    service_level_target: float = 0.5
    warmup_days: int = 7
    poll_s: float = 5.0
    booking_horizon_s: float = 4 * 3600.0
    agent_first: bool = False

    def __post_init__(self):
        for name in (
            "accept_probability",
            "answer_probability",
            "redial_while_pending",
        ):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValidationError(name, value, "use a probability in [0, 1]")
        for name in ("offer_quantile", "promise_quantile", "service_level_target"):
            value = getattr(self, name)
            if not 0.0 < value < 1.0:
                raise ValidationError(name, value, "use a probability in (0, 1)")
        for name in (
            "window_s",
            "callback_patience_s",
            "service_level_s",
            "poll_s",
            "booking_horizon_s",
        ):
            value = getattr(self, name)
            # Written so that NaN fails too: every comparison with it is false.
            if not 0 < value < math.inf:
                raise ValidationError(
                    name, value, "use a positive, finite number of seconds"
                )
        for name in ("reoffer_s", "threshold_s"):
            value = getattr(self, name)
            if not 0 <= value < math.inf:
                raise ValidationError(name, value, "use a finite number, 0 or more")
        if self.max_offers < 1:
            raise ValidationError("max_offers", self.max_offers, "use 1 or more")
        if self.warmup_days < 0:
            raise ValidationError("warmup_days", self.warmup_days, "use 0 or more")

    def as_dict(self) -> dict:
        return asdict(self)

"""The inbound surge IVR: run a scenario on one answered call.

An ``IvrSession`` lives on the gateway's dispatcher thread like an
outbound flow. It answers the call, walks the scenario's nodes (play,
menu, collect, callback, hangup), takes digits from RFC 4733 events and
from the in-band detector, and asks an ``IvrBackend`` for the predicted
wait and for the callback promise. Those backend calls run on the
gateway's backend thread and their results come back to the dispatcher,
so other calls go on while the coordinator works. The promise is stored
by the backend before the session reads it back, so a caller who hangs up
during the read-back (or while it is stored) still gets the callback.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from callsure.actors.sip.prompts import digit_prompts
from callsure.engine.callbacks import MAX_IVR_STEPS
from callsure.engine.exceptions import (
    CallsureError,
    InfeasibleTimeError,
    ValidationError,
)
from callsure.engine.phone import mask_number

if TYPE_CHECKING:
    from callsure.actors.sip.scenario import Scenario

logger = logging.getLogger(__name__)

_URI_USER = re.compile(r"sips?:([^@;>]+)@")


class IvrBackend(Protocol):
    """Coordinator services the IVR uses."""

    def estimate_wait_s(self, caller: str, queue: str) -> float:
        """Predicted wait in seconds for a caller entering ``queue`` now."""
        ...

    def request_callback(
        self,
        caller: str,
        queue: str,
        mode: str,
        requested_time: str | None,
        ivr_history: tuple[str, ...],
    ) -> datetime | None:
        """Store a callback promise and return its time in local time.

        ``mode`` is ``asap``, ``at_time`` or ``predicted``; ``requested_time``
        is ``HHMM`` as keyed for ``at_time``. Returns ``None`` for ``asap``.
        Raises ``InfeasibleTimeError`` or ``InvalidTimeError`` for a time
        that cannot be kept.
        """
        ...


def caller_number(remote_uri: str) -> str:
    """Return the user part of a From URI (the calling number), or ""."""
    match = _URI_USER.search(remote_uri)
    return match.group(1) if match else ""


def callback_history(history: list[str]) -> tuple[str, ...]:
    """Return the last ``MAX_IVR_STEPS`` steps of an IVR history, in order.

    A callback request with a longer history is rejected, so a caller who
    looped through the menus more often would get no callback. The agent
    gets the most recent steps, which led to the callback.
    """
    return tuple(history[-MAX_IVR_STEPS:])


def _trace(error: BaseException) -> BaseException | None:
    """Return ``error`` for a traceback in the log, unless callsure raised it."""
    return None if isinstance(error, CallsureError) else error


class IvrSession:
    """One inbound call walking a scenario."""

    def __init__(self, gateway, endpoint, key: str, incoming: dict, scenario: Scenario):
        self.gateway = gateway
        self.endpoint = endpoint
        self.key = key
        self.scenario = scenario
        self.backend = gateway.ivr_backend
        self.caller = caller_number(incoming.get("remote_uri", ""))
        self.variables: dict[str, str] = {"caller": self.caller}
        self.history: list[str] = []
        self.node_name = ""
        self.node: dict = {}
        self.digits = ""
        self.attempt = 0
        self.waiting_for_digits = False
        self.hanging_up = False
        self.live = True
        self.reserved_legs = 0
        self._timer = None
        self._starting = False

    @property
    def keys(self) -> tuple[str]:
        return (self.key,)

    def start(self) -> None:
        logger.info("ivr %s: call from %s", self.key, mask_number(self.caller))
        self.gateway.publish("ivr.started", self, {"caller": mask_number(self.caller)})
        self.gateway.send(self.endpoint, {"op": "answer", "call": self.key})

    # --------------------------------------------------------------- events

    def on_event(self, key: str, event: dict) -> None:
        kind = event["ev"]
        if kind == "media" and not self.node_name:
            self._enter_start()
        elif kind == "state" and event["state"] == "DISCONNECTED":
            self._on_disconnected()
        elif kind == "play_done":
            self._on_play_done()
        elif kind == "dtmf":
            self._on_digit(event["digit"])
        elif kind == "dsp":
            detector_event = event["event"]
            kind = str(detector_event.get("kind", detector_event.get("type", "")))
            digit = detector_event.get("digit") or detector_event.get("value")
            if "dtmf" in kind.lower() and digit:
                self._on_digit(str(digit))

    def _enter_start(self) -> None:
        if self._starting:
            return
        self._starting = True
        caller, queue = self.caller, self.scenario.queue
        self.gateway.run_in_background(
            lambda: self.backend.estimate_wait_s(caller, queue), self._on_wait_estimated
        )

    def _on_wait_estimated(self, wait_s: float | None, error: BaseException | None):
        if error is not None:
            logger.error(
                "ivr %s: wait estimate failed: %s",
                self.key,
                error,
                exc_info=_trace(error),
            )
            wait_s = 0.0
        if not self.live:
            return
        self.variables["wait_minutes"] = str(max(1, round(wait_s / 60)))
        self.gateway.publish(
            "ivr.wait_estimated", self, {"wait_s": wait_s, "queue": self.scenario.queue}
        )
        self._enter(self.scenario.start)

    def _enter(self, name: str | None) -> None:
        self._cancel_timer()
        if name is None:
            self._hang_up()
            return
        self.node_name = name
        self.node = self.scenario.node(name)
        self.history.append(name)
        self.digits = ""
        self.waiting_for_digits = False
        self.gateway.publish("ivr.node", self, {"node": name})
        kind = self.node["type"]
        if kind == "callback":
            self._request_callback()
            return
        if kind in ("menu", "collect"):
            self.waiting_for_digits = True
        if kind == "hangup":
            self.hanging_up = True
        prompts = self.node.get("prompts", [])
        if prompts:
            self._play(prompts)
        else:
            self._on_play_done()

    def _play(self, prompts: list[str]) -> None:
        names: list[str] = []
        for prompt in prompts:
            if prompt.startswith("$"):
                names += digit_prompts(self.variables.get(prompt[1:], ""))
            else:
                names.append(prompt)
        files = self.gateway.prompts.files(names)
        self.gateway.send(
            self.endpoint, {"op": "play", "call": self.key, "files": files}
        )

    def _on_play_done(self) -> None:
        kind = self.node.get("type")
        if kind == "hangup" or self.hanging_up:
            self._hang_up()
        elif kind == "play":
            self._enter(self.node.get("next"))
        elif kind in ("menu", "collect"):
            timeout_s = self.node.get("timeout_s", 8 if kind == "menu" else 10)
            self._set_timer(timeout_s, self._on_digit_timeout)

    def _on_digit(self, digit: str) -> None:
        if not self.waiting_for_digits:
            return
        if not self.digits:
            # Barge-in: a key press stops the prompt.
            self.gateway.send(self.endpoint, {"op": "stop_play", "call": self.key})
        kind = self.node["type"]
        if kind == "menu":
            self._choose(digit)
            return
        self.digits += digit
        if len(self.digits) >= int(self.node["digits"]):
            self.variables[self.node["variable"]] = self.digits
            self.history.append(f"{self.node_name}={self.digits}")
            self._enter(self.node["next"])
        else:
            self._set_timer(self.node.get("timeout_s", 10), self._on_digit_timeout)

    def _choose(self, digit: str) -> None:
        option = self.node["options"].get(digit)
        if option is None:
            self._retry_or_fail()
            return
        self.history.append(f"{self.node_name}={digit}")
        self.attempt = 0
        self._enter(option["next"])

    def _on_digit_timeout(self) -> None:
        if self.node.get("type") == "collect":
            self._enter(self.node.get("on_failure"))
            return
        self._retry_or_fail()

    def _retry_or_fail(self) -> None:
        self._cancel_timer()
        self.attempt += 1
        if self.attempt >= int(self.node.get("attempts", 3)):
            self.attempt = 0
            self._enter(self.node.get("on_failure"))
            return
        self.digits = ""
        prompts = [*self.node.get("invalid_prompts", []), *self.node["prompts"]]
        self._play(prompts)

    def _request_callback(self) -> None:
        mode = self.node["mode"]
        requested = None
        if mode == "at_time":
            requested = self.variables.get(self.node["time_variable"])
        caller, queue = self.caller, self.scenario.queue
        history = callback_history(self.history)
        node = self.node
        self.gateway.run_in_background(
            lambda: self.backend.request_callback(
                caller, queue, mode, requested, history
            ),
            lambda promised, error: self._on_callback_stored(
                node, mode, promised, error
            ),
        )

    def _on_callback_stored(
        self,
        node: dict,
        mode: str,
        promised: datetime | None,
        error: BaseException | None,
    ) -> None:
        # A caller who hung up meanwhile keeps the promise, but the session
        # plays nothing more.
        if isinstance(error, InfeasibleTimeError | ValidationError):
            logger.info("ivr %s: callback %s rejected: %s", self.key, mode, error)
            self.gateway.publish("ivr.callback_rejected", self, {"reason": str(error)})
            if self.live:
                self._enter(node.get("on_infeasible", node.get("on_failure")))
            return
        if error is not None:
            logger.error(
                "ivr %s: callback request failed: %s",
                self.key,
                error,
                exc_info=_trace(error),
            )
            if self.live:
                self._enter(node.get("on_failure"))
            return
        if promised is not None:
            self.variables["promised_time"] = promised.strftime("%H%M")
        self.gateway.publish(
            "ivr.callback_promised",
            self,
            {"mode": mode, "promised_time": self.variables.get("promised_time", "")},
        )
        if self.live:
            self._enter(node["next"])

    # -------------------------------------------------------------- ending

    def _hang_up(self) -> None:
        self._cancel_timer()
        self.hanging_up = True
        if self.live:
            self.gateway.send(self.endpoint, {"op": "hangup", "call": self.key})

    def _on_disconnected(self) -> None:
        self.live = False
        self._cancel_timer()
        self.gateway.publish("ivr.ended", self, {"history": list(self.history)})
        self.gateway.forget(self)

    def on_endpoint_lost(self) -> None:
        self._on_disconnected()

    def _set_timer(self, delay_s: float, callback) -> None:
        self._cancel_timer()
        self._timer = self.gateway.schedule(delay_s, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

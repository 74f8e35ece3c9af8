"""The outbound callback call flow: dial, classify, confirm, bridge, report.

One ``OutboundFlow`` per dial order. It handles the events of its legs in
order on the gateway's dispatcher thread and reports exactly one outcome::

    [agent-first: AGENT_RINGING -> agent answers -> hold prompt]
    CUSTOMER_RINGING --answer--> ANALYSING --HUMAN/NOTSURE--> [CONFIRMING]
         |                           |                            |
         | final response / timer    | MACHINE, SIT, FAX, SILENCE |
         v                           v                            v
      outcome of the status     hang up (or message)     AGENT_RINGING -> BRIDGED

The outcome is reported when the customer is bridged (``CONNECTED``) or
when the flow ends without a bridge; later hang-ups only publish events.
With ``bridge_method = "refer"`` the customer is transferred instead
(TRANSFERRING): ``CONNECTED`` waits for the NOTIFY whose sipfrag carries
the agent call's 2xx (RFC 3515).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import quote

from callsure.actors.sip.outcomes import (
    outcome_for_status,
    outcome_for_verdict,
    sit_code_from_name,
)
from callsure.engine.callbacks import DialMode, DialOrder, Outcome, SitCode
from callsure.engine.phone import mask_number

if TYPE_CHECKING:
    from callsure.actors.sip.gateway import CallGateway

logger = logging.getLogger(__name__)

IVR_HISTORY_HEADER = "X-Callsure-Ivr-History"
CALLBACK_ID_HEADER = "X-Callsure-Callback-Id"
ATTEMPT_ID_HEADER = "X-Callsure-Attempt-Id"

# A REFER transfer fails when no final NOTIFY arrived within the agent's ring
# timeout plus this margin, which covers the REFER, the transferee's INVITE
# and the NOTIFYs.
TRANSFER_MARGIN_S = 10.0


@dataclass(frozen=True)
class CallReport:
    """The single outcome of one dial attempt, as sent to the coordinator.

    Attributes
    ----------
    attempt_id, callback_id : str
    outcome : Outcome
    sit_code : SitCode or None
        Set when ``outcome`` is ``SIT`` and the tone was decoded.
    detail : str
        SIP status and reason, or the verdict and its cause.
    agent_id : str or None
        Agent the customer was bridged to.
    verdict : str
        Call-progress verdict (``HUMAN``, ...), "" when none was reached.
    sip_status : int
        Last SIP status of the customer leg, 0 when none.
    """

    attempt_id: str
    callback_id: str
    outcome: Outcome
    sit_code: SitCode | None = None
    detail: str = ""
    agent_id: str | None = None
    verdict: str = ""
    sip_status: int = 0
    ivr_history: tuple[str, ...] = field(default_factory=tuple)


class FlowState(enum.Enum):
    AGENT_RINGING_FIRST = "agent_ringing_first"
    CUSTOMER_RINGING = "customer_ringing"
    ANALYSING = "analysing"
    CONFIRMING = "confirming"
    WAITING_FOR_BEEP = "waiting_for_beep"
    LEAVING_MESSAGE = "leaving_message"
    AGENT_RINGING = "agent_ringing"
    TRANSFERRING = "transferring"
    BRIDGED = "bridged"
    ENDED = "ended"


def ivr_history_header(history: tuple[str, ...]) -> str:
    """Encode the IVR history as one header value: steps joined by ``,``.

    Each step is percent-encoded, so a step containing a comma or a
    non-ASCII character survives the trip through SIP proxies.
    """
    return ",".join(quote(step, safe="") for step in history)


class OutboundFlow:
    """One callback attempt from dial to outcome.

    Parameters
    ----------
    gateway : CallGateway
        Supplies ``send``, ``schedule``, ``report``, ``publish`` and the
        settings; every method here runs on its dispatcher thread.
    order : DialOrder
    endpoint : EndpointProcess
        The process holding both legs (conference bridging needs them
        in one conference).
    """

    def __init__(self, gateway: CallGateway, order: DialOrder, endpoint):
        self.gateway = gateway
        self.settings = gateway.settings
        self.order = order
        self.endpoint = endpoint
        self.customer_key = f"{order.attempt_id}#customer"
        self.agent_key = f"{order.attempt_id}#agent"
        self.state: FlowState | None = None
        self.reported = False
        self.verdict = ""
        self.sip_status = 0
        self.customer_up = False
        self.agent_up = False
        self.customer_live = False
        self.agent_live = False
        self._timer = None
        self.agent_id = order.target.agent_id or order.target.queue

    # ---------------------------------------------------------------- start

    @property
    def keys(self) -> tuple[str, str]:
        return self.customer_key, self.agent_key

    def start(self) -> None:
        if self.order.dial_mode is DialMode.AGENT_FIRST:
            self._dial_agent(FlowState.AGENT_RINGING_FIRST)
        else:
            self._dial_customer()

    def _headers(self) -> dict[str, str]:
        return {
            CALLBACK_ID_HEADER: self.order.callback_id,
            ATTEMPT_ID_HEADER: self.order.attempt_id,
            IVR_HISTORY_HEADER: ivr_history_header(self.order.ivr_history),
        }

    def _dial_customer(self) -> None:
        self.state = FlowState.CUSTOMER_RINGING
        self.customer_live = True
        uri = self.settings.customer_uri(self.order.phone_number)
        logger.info(
            "attempt %s: dialing %s on %s",
            self.order.attempt_id,
            mask_number(self.order.phone_number),
            self.endpoint.name,
        )
        self.gateway.publish("call.dialing", self, {"leg": "customer"})
        self.gateway.send(
            self.endpoint,
            {
                "op": "dial",
                "call": self.customer_key,
                "uri": uri,
                "headers": {
                    CALLBACK_ID_HEADER: self.order.callback_id,
                    ATTEMPT_ID_HEADER: self.order.attempt_id,
                },
                "ring_timeout_s": self.settings.ring_timeout_s,
            },
        )

    def _dial_agent(self, state: FlowState) -> None:
        self.state = state
        self.agent_live = True
        self.gateway.publish("call.dialing", self, {"leg": "agent"})
        self.gateway.send(
            self.endpoint,
            {
                "op": "dial",
                "call": self.agent_key,
                "uri": self.settings.agent_uri(self.agent_id),
                "headers": self._headers(),
                "ring_timeout_s": self.settings.agent_ring_timeout_s,
            },
        )

    # --------------------------------------------------------------- events

    def on_event(self, key: str, event: dict) -> None:
        kind = event["ev"]
        leg = "customer" if key == self.customer_key else "agent"
        if kind == "state":
            self._on_state(leg, event)
        elif kind == "verdict":
            self._on_verdict(event)
        elif kind == "dtmf":
            self._on_digit(event["digit"], event.get("source", ""))
        elif kind == "dsp":
            self._on_dsp_event(leg, event["event"])
        elif kind == "play_done":
            self._on_play_done(leg)
        elif kind == "bridged":
            self._on_bridged()
        elif kind == "transfer_status":
            self._on_transfer_status(event)

    def _on_state(self, leg: str, event: dict) -> None:
        state = event["state"]
        if leg == "customer":
            self.sip_status = event.get("code", 0) or self.sip_status
        if state in ("CONNECTING", "CONFIRMED"):
            if leg == "customer" and not self.customer_up:
                self.customer_up = True
                self._on_customer_answered()
            elif leg == "agent" and not self.agent_up:
                self.agent_up = True
                self._on_agent_answered()
        elif state == "DISCONNECTED":
            if leg == "customer":
                self.customer_live = False
                self._on_customer_ended(event)
            else:
                self.agent_live = False
                self._on_agent_ended(event)

    def _on_customer_answered(self) -> None:
        self.gateway.publish("call.answered", self, {"leg": "customer"})
        self.state = FlowState.ANALYSING
        self._set_timer(self.settings.analysis_timeout_s, self._on_analysis_timeout)

    def _on_analysis_timeout(self) -> None:
        if self.state is FlowState.ANALYSING:
            self._on_verdict({"verdict": "NOTSURE", "cause": "analysis timeout"})

    def _on_verdict(self, event: dict) -> None:
        verdict = str(event.get("verdict") or event.get("kind") or "")
        cause = str(event.get("cause") or "")
        answered = event.get("answered", True)
        if not answered:
            self.gateway.publish(
                "call.early_media", self, {"verdict": verdict, "cause": cause}
            )
            # Before answer, a special information tone or a network
            # announcement (a phone switched off, voicemail ahead) ends the
            # attempt; ringback and anything else waits for the answer, and
            # the endpoint analyses the answered call afresh.
            if verdict == "MACHINE" and cause == "EARLY_MEDIA":
                self._finish(Outcome.MACHINE, "announcement before answer")
                return
            if verdict != "SIT":
                return
        if self.state not in (FlowState.ANALYSING, FlowState.CUSTOMER_RINGING):
            return
        self.verdict = verdict
        self._cancel_timer()
        self.gateway.publish("call.verdict", self, {"verdict": verdict, "cause": cause})
        outcome = outcome_for_verdict(verdict)
        if outcome is Outcome.CONNECTED:
            self._on_person()
            return
        sit_code = sit_code_from_name(event.get("sit_code") or cause)
        if (
            outcome is Outcome.MACHINE
            and self.settings.machine_action == "leave_message"
        ):
            self.state = FlowState.WAITING_FOR_BEEP
            if event.get("beep_ms") is not None:
                # The beep came before the verdict: the machine records now.
                self._leave_message()
            else:
                self._set_timer(self.settings.beep_wait_s, self._leave_message)
            return
        self._finish(outcome, f"{verdict}: {cause}".rstrip(": "), sit_code)

    def _on_person(self) -> None:
        if self.settings.confirm_with_dtmf:
            self.state = FlowState.CONFIRMING
            self._play(self.customer_key, ["confirm"])
            self._set_timer(self.settings.confirm_timeout_s, self._on_confirm_timeout)
            return
        self._connect_agent()

    def _on_confirm_timeout(self) -> None:
        if self.state is FlowState.CONFIRMING:
            self._finish(Outcome.REJECTED, "no confirmation key pressed")

    def _on_digit(self, digit: str, source: str) -> None:
        self.gateway.publish("call.dtmf", self, {"digit": digit, "source": source})
        if self.state is FlowState.CONFIRMING and digit == "1":
            self._cancel_timer()
            self._connect_agent()

    def _on_dsp_event(self, leg: str, event: dict) -> None:
        kind = str(event.get("kind", event.get("type", ""))).lower()
        if "dtmf" in kind or "digit" in kind:
            digit = event.get("digit") or event.get("value")
            if digit:
                self._on_digit(str(digit), "inband")
        elif "beep" in kind and self.state is FlowState.WAITING_FOR_BEEP:
            self._cancel_timer()
            self._leave_message()

    def _leave_message(self) -> None:
        if self.state is FlowState.WAITING_FOR_BEEP:
            self.state = FlowState.LEAVING_MESSAGE
            self._play(self.customer_key, ["machine_message"])

    def _on_play_done(self, leg: str) -> None:
        if self.state is FlowState.LEAVING_MESSAGE:
            self._finish(Outcome.MACHINE, f"MACHINE: message left ({self.verdict})")

    def _connect_agent(self) -> None:
        if self.settings.bridge_method == "refer":
            self.state = FlowState.TRANSFERRING
            uri = self.settings.agent_uri(self.agent_id)
            headers = "&".join(
                f"{name}={quote(value, safe='')}"
                for name, value in self._headers().items()
            )
            self.gateway.send(
                self.endpoint,
                {
                    "op": "transfer",
                    "call": self.customer_key,
                    "uri": f"<{uri}?{headers}>",
                },
            )
            self._set_timer(self._transfer_timeout_s(), self._on_transfer_timeout)
            return
        if self.agent_up:
            self._bridge()
            return
        self._play(self.customer_key, ["connecting"])
        self._dial_agent(FlowState.AGENT_RINGING)

    def _transfer_timeout_s(self) -> float:
        return self.settings.agent_ring_timeout_s + TRANSFER_MARGIN_S

    def _on_transfer_status(self, event: dict) -> None:
        if self.state is not FlowState.TRANSFERRING:
            return
        code = int(event.get("code", 0))
        reason = str(event.get("reason", ""))
        final = bool(event.get("final"))
        self.gateway.publish(
            "call.transfer", self, {"code": code, "reason": reason, "final": final}
        )
        if 200 <= code < 300:
            # The sipfrag carries the agent call's 2xx: the agent answered.
            self._cancel_timer()
            self._report(Outcome.CONNECTED, f"transferred by REFER: {code} {reason}")
            self._hang_up(self.customer_key)
        elif code >= 300 or final:
            # NOTE: a person was reached but no agent took the call. As with a
            # failed agent leg, the engine has no outcome for that.
            self._finish(Outcome.UNKNOWN, f"transfer failed: {code} {reason}".strip())

    def _on_transfer_timeout(self) -> None:
        if self.state is FlowState.TRANSFERRING:
            # NOTE: the transferee may still be calling the agent, and that
            # call can connect after this report.
            self._finish(
                Outcome.UNKNOWN,
                "transfer failed: no final NOTIFY within "
                f"{self._transfer_timeout_s():g} s",
            )

    def _on_agent_answered(self) -> None:
        self.gateway.publish("call.answered", self, {"leg": "agent"})
        if self.state is FlowState.AGENT_RINGING_FIRST:
            self._play(self.agent_key, ["connecting"])
            self._dial_customer()
        elif self.state is FlowState.AGENT_RINGING:
            self._bridge()

    def _bridge(self) -> None:
        self.state = FlowState.BRIDGED
        self.gateway.send(
            self.endpoint,
            {"op": "bridge", "first": self.customer_key, "second": self.agent_key},
        )

    def _on_bridged(self) -> None:
        self._report(Outcome.CONNECTED, f"bridged to {self.agent_id}")
        self.gateway.publish(
            "call.bridged",
            self,
            {"agent": self.agent_id, "ivr_history": list(self.order.ivr_history)},
        )

    def _on_customer_ended(self, event: dict) -> None:
        code = int(event.get("code", 0))
        reason = event.get("reason", "")
        if self.state is FlowState.BRIDGED or self.reported:
            self._hang_up(self.agent_key)
            self._end()
            return
        if not self.customer_up:
            if event.get("no_free_slot") and self.state is FlowState.CUSTOMER_RINGING:
                self.customer_live = False
                self._hang_up(self.agent_key)
                self.gateway.requeue(self)
                return
            if event.get("timed_out"):
                outcome, detail = Outcome.NO_ANSWER, "ring timeout"
                if not event.get("provisional", True):
                    # No 180 or 183 at all: the customer's phone never rang,
                    # or the INVITE never reached a trunk.
                    detail = "ring timeout, no ringing reported"
                    logger.warning(
                        "attempt %s: no 180 or 183 within the ring timeout from %s; "
                        "if every call does this, check customer_uri_template "
                        "and that the trunk is reachable",
                        self.order.attempt_id,
                        self.endpoint.name,
                    )
            elif self._authentication_failed("customer", event):
                outcome = Outcome.NETWORK_FAILURE
                detail = f"authentication failed: SIP {code} {reason}"
            else:
                outcome, detail = outcome_for_status(code), f"SIP {code} {reason}"
            self._finish(outcome, detail.strip())
            return
        # The customer hung up after answering, before the bridge: a
        # ringing agent leg is cancelled in _finish.
        self._finish(
            Outcome.CUSTOMER_HUNG_UP, f"customer hung up in {self.state.value}"
        )

    def _authentication_failed(self, leg: str, event: dict) -> bool:
        """Log and return whether the proxy or trunk refused our credentials.

        A final 401 or 407, or a 403 to an INVITE sent with credentials,
        means the digest credentials are wrong or missing, so every call
        fails the same way until the configuration is fixed.
        """
        code = int(event.get("code", 0))
        refused = code == 403 and event.get("credentials_sent")
        if not (code in (401, 407) or refused):
            return False
        username = self.settings.auth_username
        if username:
            credentials = f"user {username}, realm {self.settings.auth_realm}"
        else:
            credentials = "no auth_username set"
        logger.warning(
            "attempt %s: %s leg: authentication failed: SIP %s %s (%s); "
            "check auth_username, auth_realm and auth_password",
            self.order.attempt_id,
            leg,
            code,
            event.get("reason", ""),
            credentials,
        )
        return True

    def _on_agent_ended(self, event: dict) -> None:
        code = int(event.get("code", 0))
        if not self.agent_up:
            self._authentication_failed("agent", event)
        if self.state is FlowState.BRIDGED or self.reported:
            self._hang_up(self.customer_key)
            self._end()
            return
        if self.state is FlowState.AGENT_RINGING_FIRST:
            self._finish(Outcome.NOT_DIALED, f"agent leg failed: SIP {code}")
            return
        if self.state in (FlowState.AGENT_RINGING,):
            # NOTE: a person was reached but no agent took the call. The
            # engine has no outcome for that, so it is reported UNKNOWN and
            # retried under that rule.
            self._finish(Outcome.UNKNOWN, f"agent leg failed: SIP {code}")
            return
        if self.agent_up and self.state is not FlowState.ENDED:
            self._finish(Outcome.UNKNOWN, "agent hung up before the bridge")

    # -------------------------------------------------------------- helpers

    def _play(self, key: str, prompts: list[str]) -> None:
        files = self.gateway.prompts.files(prompts)
        self.gateway.send(self.endpoint, {"op": "play", "call": key, "files": files})

    def _hang_up(self, key: str) -> None:
        live = self.customer_live if key == self.customer_key else self.agent_live
        if live:
            self.gateway.send(self.endpoint, {"op": "hangup", "call": key})

    def _set_timer(self, delay_s: float, callback) -> None:
        self._cancel_timer()
        self._timer = self.gateway.schedule(delay_s, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _report(self, outcome: Outcome, detail: str, sit_code=None) -> None:
        if self.reported:
            return
        self.reported = True
        report = CallReport(
            attempt_id=self.order.attempt_id,
            callback_id=self.order.callback_id,
            outcome=outcome,
            sit_code=sit_code,
            detail=detail,
            agent_id=self.agent_id if outcome is Outcome.CONNECTED else None,
            verdict=self.verdict,
            sip_status=self.sip_status,
            ivr_history=tuple(self.order.ivr_history),
        )
        self.gateway.report(self, report)

    def _finish(self, outcome: Outcome, detail: str, sit_code=None) -> None:
        """Report ``outcome`` and hang up every live leg."""
        self._cancel_timer()
        self._report(outcome, detail, sit_code)
        self._hang_up(self.customer_key)
        self._hang_up(self.agent_key)
        self._end()

    def _end(self) -> None:
        self.state = FlowState.ENDED
        self._cancel_timer()
        if not self.customer_live and not self.agent_live:
            self.gateway.forget(self)

    def on_endpoint_lost(self) -> None:
        """Report a network failure: the endpoint process holding the legs died."""
        self.customer_live = False
        self.agent_live = False
        self._finish(Outcome.NETWORK_FAILURE, f"endpoint {self.endpoint.name} failed")

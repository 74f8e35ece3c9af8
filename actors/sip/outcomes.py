"""Map SIP final responses and call-progress verdicts to attempt outcomes.

The coordinator applies the retry policy; this module only names what
happened, in the engine's vocabulary (``callsure.engine.callbacks.Outcome``).
"""

from __future__ import annotations

from callsure.engine.callbacks import Outcome, SitCode

# RFC 3261 section 21: 486 Busy Here and 600 Busy Everywhere are a busy
# line; 480 Temporarily Unavailable, 408 Request Timeout and 487 after our
# own CANCEL (the engine's ring timer) are no answer; 404 Not Found and
# 484 Address Incomplete mean the number cannot be reached; 603 Decline is
# the callee refusing the call. A final 401 Unauthorized or 407 Proxy
# Authentication Required comes from the trunk or proxy refusing the
# gateway's own credentials, so it is a network failure (retried a few
# times by the policy), never the customer's refusal.
_STATUS_OUTCOMES: dict[int, Outcome] = {
    401: Outcome.NETWORK_FAILURE,
    407: Outcome.NETWORK_FAILURE,
    486: Outcome.BUSY,
    600: Outcome.BUSY,
    480: Outcome.NO_ANSWER,
    408: Outcome.NO_ANSWER,
    404: Outcome.INVALID_NUMBER,
    484: Outcome.INVALID_NUMBER,
    604: Outcome.INVALID_NUMBER,
    603: Outcome.REJECTED,
    403: Outcome.REJECTED,
    503: Outcome.NETWORK_FAILURE,
    500: Outcome.NETWORK_FAILURE,
    502: Outcome.NETWORK_FAILURE,
    504: Outcome.NETWORK_FAILURE,
}

_VERDICT_OUTCOMES: dict[str, Outcome] = {
    "HUMAN": Outcome.CONNECTED,
    "MACHINE": Outcome.MACHINE,
    "SIT": Outcome.SIT,
    "FAX": Outcome.FAX,
    "SILENCE": Outcome.SILENCE,
}


def outcome_for_status(status_code: int) -> Outcome:
    """Return the outcome of a call that ended before answer with ``status_code``.

    Parameters
    ----------
    status_code : int
        SIP final response code, or a PJSIP internal code: PJSIP reports a
        transport failure as 503 and its own timer B expiry as 408.

    Returns
    -------
    Outcome
        Unlisted 4xx codes are ``REJECTED``, unlisted 5xx ``NETWORK_FAILURE``,
        unlisted 6xx ``REJECTED`` and anything else ``UNKNOWN``.
    """
    outcome = _STATUS_OUTCOMES.get(status_code)
    if outcome is not None:
        return outcome
    if 400 <= status_code < 500 or 600 <= status_code < 700:
        return Outcome.REJECTED
    if 500 <= status_code < 600:
        return Outcome.NETWORK_FAILURE
    return Outcome.UNKNOWN


def outcome_for_verdict(verdict: str) -> Outcome:
    """Return the outcome for a call-progress verdict name (``HUMAN``, ...).

    ``NOTSURE`` maps to ``CONNECTED``: the gateway bridges a call it cannot
    classify, because hanging up on a person costs more than an agent
    hearing a voicemail greeting.
    """
    if verdict == "NOTSURE":
        return Outcome.CONNECTED
    try:
        return _VERDICT_OUTCOMES[verdict]
    except KeyError:
        raise ValueError(
            f"unknown verdict {verdict!r}: expected one of "
            f"{', '.join([*_VERDICT_OUTCOMES, 'NOTSURE'])}"
        ) from None


def sit_code_from_name(name: str | None) -> SitCode | None:
    """Return the ``SitCode`` for a code name such as ``"IC"``, else ``None``."""
    if not name:
        return None
    try:
        return SitCode(name.upper())
    except ValueError:
        return None

"""E.164 phone numbers: validation and the masked form used in logs."""

from __future__ import annotations

import re

from callsure.engine.exceptions import InvalidPhoneNumberError

# ITU-T E.164: a country code and subscriber number, at most 15 digits,
# never starting with 0.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SEPARATORS = re.compile(r"[\s().-]")


def mask_number(number: str) -> str:
    """Return ``number`` with all but its first 2 and last 2 digits hidden.

    Logs and error messages use this form only, so a log file never holds a
    full phone number.

    >>> mask_number("+972501234567")
    '+97*******67'
    """
    if not number:
        return "<empty>"
    digits = number.lstrip("+")
    keep_head, keep_tail = 2, 2
    if len(digits) <= keep_head + keep_tail:
        return "+" + "*" * len(digits)
    hidden = "*" * (len(digits) - keep_head - keep_tail)
    return "+" + digits[:keep_head] + hidden + digits[-keep_tail:]


def parse_e164(value: str, field: str = "phone_number") -> str:
    """Validate ``value`` as an E.164 number and return it normalised.

    Spaces, dots, dashes and brackets are removed; nothing else is guessed
    (no national prefix is rewritten).

    Raises
    ------
    InvalidPhoneNumberError
        When the value is not ``+`` and 7 to 15 digits, the first not 0.
    """
    if not isinstance(value, str) or not value:
        raise InvalidPhoneNumberError(
            field, value, "send a number in E.164 form, such as +14155550100"
        )
    compact = _SEPARATORS.sub("", value)
    if not _E164.fullmatch(compact):
        raise InvalidPhoneNumberError(
            field,
            mask_number(compact) if compact.lstrip("+").isdigit() else compact[:24],
            "send a number in E.164 form: '+', the country code and the "
            "subscriber number, 7 to 15 digits in all, such as +14155550100",
        )
    return compact

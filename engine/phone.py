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

    A ``+`` is shown only when ``number`` starts with one, so a national
    number does not read as a country code.

    >>> mask_number("+972501234567")
    '+97********67'
    >>> mask_number("4155550102")
    '41******02'
    """
    if not number:
        return "<empty>"
    plus = "+" if number.startswith("+") else ""
    digits = number.lstrip("+")
    keep_head, keep_tail = 2, 2
    if len(digits) <= keep_head + keep_tail:
        return plus + "*" * len(digits)
    hidden = "*" * (len(digits) - keep_head - keep_tail)
    return plus + digits[:keep_head] + hidden + digits[-keep_tail:]


def _shown(compact: str) -> str:
    """Return the rejected value as an error may show it.

    Any value with a digit may be a phone number, so only its digits are
    shown, masked, and the rest is dropped.
    """
    digits = "".join(character for character in compact if character.isdigit())
    if not digits:
        return compact[:24]
    return mask_number(("+" if compact.startswith("+") else "") + digits)


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
            _shown(compact),
            "send a number in E.164 form: '+', the country code and the "
            "subscriber number, 7 to 15 digits in all, such as +14155550100",
        )
    return compact

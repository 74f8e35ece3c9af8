"""E.164 phone numbers: validation and the masked form used in logs."""

from __future__ import annotations

import re

from callsure.engine.exceptions import InvalidPhoneNumberError

# ITU-T E.164: a country code and subscriber number, at most 15 digits,
# never starting with 0.
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_SEPARATORS = re.compile(r"[\s().-]")

# Country calling codes assigned by ITU-T, from the list of E.164 assigned
# country codes that ITU-T publishes as an annex to its Operational
# Bulletin: geographic areas, global services (800 freephone, 808 shared
# cost, 870 Inmarsat, 878 personal numbering, 979 premium rate), satellite
# systems (881), international networks (882, 883), groups of countries
# (388) and trials (991). Spare and reserved codes are absent (for example
# 28x, 259, 384, 422, 671, 684, 80x, 875 to 877, 879, 969, 978, 990, 997,
# 999), because no subscriber has a number under them. The codes are
# prefix-free, so at most one of them starts a number. The geographic codes
# were compared with the country-code map of libphonenumber
# (python-phonenumbers); the copy compared predates 211 (South Sudan, 2011)
# and 383 (Kosovo, 2016).
# NOTE: a number under a code that ITU-T assigns after this table was
# written is rejected until the code is added here.
ASSIGNED_COUNTRY_CODES = frozenset(
    {1, 7}
    | {20, 27, 30, 31, 32, 33, 34, 36, 39, 40, 41, 43, 44, 45, 46, 47, 48, 49}
    | {51, 52, 53, 54, 55, 56, 57, 58, 60, 61, 62, 63, 64, 65, 66}
    | {81, 82, 84, 86, 90, 91, 92, 93, 94, 95, 98}
    | {211, 212, 213, 216, 218}
    | set(range(220, 259))
    | set(range(260, 270))
    | {290, 291, 297, 298, 299}
    | set(range(350, 360))
    | set(range(370, 384))
    | {385, 386, 387, 388, 389, 420, 421, 423}
    | set(range(500, 510))
    | set(range(590, 600))
    | {670}
    | set(range(672, 684))
    | set(range(685, 693))
    | {800, 808, 850, 852, 853, 855, 856, 870, 878}
    | {880, 881, 882, 883, 886, 888}
    | set(range(960, 969))
    | set(range(970, 978))
    | {979, 991, 992, 993, 994, 995, 996, 998}
)


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
        When the value is not ``+`` and 7 to 15 digits, the first not 0,
        or when no assigned country calling code starts it.
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
    if country_code(compact) is None:
        raise InvalidPhoneNumberError(
            field,
            mask_number(compact),
            "no country calling code assigned by ITU-T E.164 starts this "
            "number; check the country code (such as 1 for the US and Canada "
            "or 44 for the UK) and send the number in E.164 form",
        )
    return compact


def country_code(number: str) -> int | None:
    """Return the assigned country calling code that starts ``number``.

    ``number`` is in E.164 form (``+`` and digits). Returns ``None`` when
    its first 1 to 3 digits are not a code in ``ASSIGNED_COUNTRY_CODES``.

    >>> country_code("+442079460958")
    44
    """
    digits = number.removeprefix("+")
    for length in (1, 2, 3):
        prefix = digits[:length]
        if len(prefix) == length and int(prefix) in ASSIGNED_COUNTRY_CODES:
            return int(prefix)
    return None

import pytest

from callsure.engine.exceptions import InvalidPhoneNumberError
from callsure.engine.phone import country_code, mask_number, parse_e164


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+972501234567", "+972501234567"),
        ("+1 (415) 555-0100", "+14155550100"),
        ("+44.20.7946.0958", "+442079460958"),
    ],
)
def test_parse_e164_normalises(raw, expected):
    assert parse_e164(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "0501234567", "+0501234567", "+12", "+1234567890123456", "+1abc5550100"]
)
def test_parse_e164_rejects(raw):
    with pytest.raises(InvalidPhoneNumberError, match="E.164"):
        parse_e164(raw)


def test_rejection_does_not_leak_number():
    with pytest.raises(InvalidPhoneNumberError) as info:
        parse_e164("+1234567890123456")
    assert "1234567890123456" not in str(info.value)


def test_mask_keeps_only_edges():
    assert mask_number("+972501234567") == "+97********67"


def test_mask_adds_no_plus():
    assert mask_number("4155550102") == "41******02"


@pytest.mark.parametrize(
    ("raw", "shown", "digits"),
    [
        ("4155550102", "41******02", "4155550102"),
        ("+14155550107;ext=1", "+14********71", "14155550107"),
        ("+1abc5550199", "+15****99", "5550199"),
    ],
)
def test_rejection_masks_digits(raw, shown, digits):
    with pytest.raises(InvalidPhoneNumberError) as info:
        parse_e164(raw)
    assert info.value.value == shown
    assert repr(shown) in str(info.value)
    assert digits not in str(info.value)
    assert "ext=" not in str(info.value)


def test_rejection_without_digits_shown():
    # Separators are removed before the check, as for a valid number.
    with pytest.raises(InvalidPhoneNumberError) as info:
        parse_e164("CALL-ME")
    assert "'CALLME'" in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        "+2801234567",  # 28x: spare
        "+2591234567",  # 259: spare
        "+3841234567",  # 384: spare
        "+6711234567",  # 671: spare since Guam moved to +1
        "+8751234567",  # 875: reserved for maritime services
        "+9991234567",  # 999: reserved
    ],
)
def test_parse_e164_rejects_unassigned_country_code(raw):
    with pytest.raises(InvalidPhoneNumberError, match="country calling code"):
        parse_e164(raw)


def test_unassigned_country_code_message_masks_number():
    with pytest.raises(InvalidPhoneNumberError) as info:
        parse_e164("+280 123 4567")
    assert info.value.field == "phone_number"
    assert info.value.value == "+28******67"
    assert "2801234567" not in str(info.value)
    assert "E.164 form" in info.value.fix


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("+14155550100", 1),
        ("+74951234567", 7),
        ("+442079460958", 44),
        ("+211912345678", 211),
        ("+38344123456", 383),
        ("+80012345678", 800),
        ("+882161234567", 882),
        ("+972501234567", 972),
    ],
)
def test_assigned_country_codes_accepted(raw, code):
    assert parse_e164(raw) == raw
    assert country_code(raw) == code


def test_country_code_of_unassigned_prefix_is_none():
    assert country_code("+2801234567") is None

import pytest

from callsure.engine.exceptions import InvalidPhoneNumberError
from callsure.engine.phone import mask_number, parse_e164


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

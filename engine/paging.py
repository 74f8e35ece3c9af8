"""Page tokens of the list methods.

A token names the last item of the page before and carries a digest of the
filters that page was listed with. So a token from another list or with
other filters, or a made-up one, is rejected rather than starting the page
at some other place. Tokens are opaque to clients.
"""

from __future__ import annotations

import hashlib

from callsure.engine.exceptions import ValidationError

_SEPARATOR = "."
_DIGEST_LENGTH = 12


def _digest(listing: str, filters: tuple) -> str:
    text = "\x1f".join([listing, *("" if f is None else str(f) for f in filters)])
    return hashlib.sha256(text.encode()).hexdigest()[:_DIGEST_LENGTH]


def page_token(listing: str, last_id: str, *filters) -> str:
    """Return the token of the page after ``last_id`` of ``listing``."""
    return f"{last_id}{_SEPARATOR}{_digest(listing, filters)}"


def after_id(listing: str, token: str, *filters) -> str | None:
    """Return the last id a ``page_token`` names, or ``None`` for no token.

    Raises ``ValidationError`` naming ``page_token`` when the token was not
    made by ``page_token`` for this listing and these filters.
    """
    if not token:
        return None
    last_id, separator, digest = token.rpartition(_SEPARATOR)
    if not separator or not last_id or digest != _digest(listing, filters):
        raise ValidationError(
            "page_token",
            token[:32],
            f"send the next_page_token of the previous {listing} reply with the "
            "same filters, or none for the first page",
        )
    return last_id

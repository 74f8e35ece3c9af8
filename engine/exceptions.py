"""Exceptions raised by callsure.

Every error the product raises on purpose derives from ``CallsureError``,
so a caller can catch the whole family at a boundary (the gRPC server maps
each class to a canonical status code)::

    CallsureError
    ├── ConfigError               invalid configuration key or value
    ├── ValidationError           invalid input; also a ValueError
    │   ├── InvalidPhoneNumberError   not an E.164 number
    │   ├── InvalidTimeError          past, ambiguous or out-of-window time
    │   ├── RequestIdReusedError      a request id replayed with another body
    │   └── ScenarioError             invalid IVR scenario document (defined
    │                                 in callsure.actors.sip.scenario)
    ├── NotFoundError             unknown id; also a KeyError
    ├── InfeasibleTimeError       a requested time that cannot be kept
    ├── InvalidStateError         a transition the lifecycle does not allow
    ├── LeaseError                another worker holds the attempt's lease
    ├── StorageError              the store failed or is corrupt
    └── GatewayError              SIP gateway or endpoint failure

Messages name the value and say what to do; they never contain a full
phone number or a secret.
"""

from __future__ import annotations

from datetime import datetime


def _restore(cls, args: tuple, state: dict) -> CallsureError:
    error = cls.__new__(cls, *args)
    error.args = args
    error.__dict__.update(state)
    return error


class CallsureError(Exception):
    """Base class of every error callsure raises on purpose."""

    def __reduce__(self):
        # The default calls the class with the message alone, which fails
        # for subclasses whose constructors take other arguments. Ray then
        # delivered such an error from an actor as UnserializableException.
        return (_restore, (type(self), self.args, self.__dict__))


class ConfigError(CallsureError):
    """A configuration key has an invalid value.

    Attributes
    ----------
    key : str
        Dotted key, for example ``server.grpc_address``.
    value : object
        The rejected value (never a secret: secret keys pass a placeholder).
    expected : str
        What the key accepts.
    """

    def __init__(self, key: str, value: object, expected: str):
        self.key = key
        self.value = value
        self.expected = expected
        super().__init__(f"invalid config {key} = {value!r}: expected {expected}")


class ValidationError(CallsureError, ValueError):
    """A request field has an invalid value.

    Attributes
    ----------
    field : str
        Field name as the API spells it, for example ``phone_number``.
    value : object
        The rejected value, masked where it is personal data.
    fix : str
        What the caller should send instead.
    """

    def __init__(self, field: str, value: object, fix: str):
        self.field = field
        self.value = value
        self.fix = fix
        if value is None or value == "":
            super().__init__(f"missing {field}: {fix}")
        else:
            super().__init__(f"invalid {field} {value!r}: {fix}")


class InvalidPhoneNumberError(ValidationError):
    """A phone number is not in E.164 form."""


class InvalidTimeError(ValidationError):
    """A time is in the past, ambiguous, or outside every allowed window."""


class RequestIdReusedError(ValidationError):
    """A request id already stored for a request with other fields.

    A replay returns the first result only when it asks for the same
    callback; a different request under the same id would otherwise be
    dropped without a word.
    """

    def __init__(self, request_id: str):
        super().__init__(
            "request_id",
            request_id,
            "this id was already used for a different callback request; "
            "send a new request id for a new request",
        )


class NotFoundError(CallsureError, KeyError):
    """No resource of ``kind`` has the id ``resource_id``."""

    def __init__(self, kind: str, resource_id: str):
        self.kind = kind
        self.resource_id = resource_id
        super().__init__(f"{kind} {resource_id!r} not found")

    def __str__(self) -> str:
        # KeyError.__str__ quotes its argument; keep the plain message.
        return self.args[0]


class InfeasibleTimeError(CallsureError):
    """A requested callback time cannot be kept.

    Attributes
    ----------
    requested : datetime
        The time the customer asked for (UTC).
    nearest_feasible : datetime or None
        The nearest time that meets the keep-probability target, if any.
    """

    def __init__(
        self, requested: datetime, nearest_feasible: datetime | None, reason: str
    ):
        self.requested = requested
        self.nearest_feasible = nearest_feasible
        self.reason = reason
        nearest = nearest_feasible.isoformat() if nearest_feasible else "none"
        super().__init__(
            f"callback time {requested.isoformat()} cannot be kept ({reason}); "
            f"nearest feasible time: {nearest}"
        )


class InvalidStateError(CallsureError):
    """A lifecycle transition that the current state does not allow."""


class LeaseError(CallsureError):
    """Another worker holds the lease on a dial attempt."""


class StorageError(CallsureError):
    """The store failed, or its contents are inconsistent."""


class GatewayError(CallsureError):
    """A SIP gateway or endpoint process failed."""

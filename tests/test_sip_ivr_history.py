"""The IVR history a callback request carries: the last steps that fit.

A caller who loops through the menus builds a history longer than a
callback request may carry. The request gets the most recent steps and is
stored by the real scheduler on a SQLite file.
"""

from __future__ import annotations

import pytest
from scheduler_support import T0, make_scheduler

from callsure.actors.sip.backend import SchedulerIvrBackend
from callsure.actors.sip.ivr import callback_history
from callsure.engine.callbacks import MAX_IVR_STEPS
from callsure.engine.clock import VirtualClock
from callsure.engine.exceptions import ValidationError

CALLER = "+14155550100"


def looping_history(loops: int) -> list[str]:
    """The steps of a caller who presses 9 to repeat the menu ``loops`` times."""
    steps = ["greeting"]
    for _ in range(loops):
        steps += ["main", "main=9"]
    return [*steps, "main", "main=1", "request_asap"]


@pytest.fixture
def backend(tmp_path):
    scheduler = make_scheduler(tmp_path / "promises.db", VirtualClock(T0))
    yield SchedulerIvrBackend(scheduler)
    scheduler.store.close()


def test_long_history_keeps_last_steps():
    history = looping_history(100)
    trimmed = callback_history(history)
    assert len(trimmed) == MAX_IVR_STEPS
    assert trimmed == tuple(history[-MAX_IVR_STEPS:])
    assert trimmed[-1] == "request_asap"


def test_short_history_kept_whole():
    history = looping_history(2)
    assert callback_history(history) == tuple(history)


def test_history_at_limit_kept_whole():
    history = [f"step-{index}" for index in range(MAX_IVR_STEPS)]
    assert callback_history(history) == tuple(history)


def test_looping_caller_gets_callback(backend):
    history = looping_history(100)
    backend.request_callback(CALLER, "billing", "asap", None, callback_history(history))

    stored = backend.scheduler.store.open_callback_for(CALLER, "billing")
    assert stored is not None
    assert stored.ivr_history == tuple(history[-MAX_IVR_STEPS:])


def test_whole_looping_history_rejected(backend):
    # Without trimming, the history is over the request limit.
    with pytest.raises(ValidationError) as info:
        backend.request_callback(
            CALLER, "billing", "asap", None, tuple(looping_history(100))
        )
    assert info.value.field == "ivr_history"

"""The contact-center simulation: the real call log in virtual time.

``replay_day`` and ``replay_days`` run days of the log through
``ContactCenterSimulation`` as a baseline and with callbacks kept by the
engine's scheduler; ``DayWorkload`` turns a day of the log into the
simulation's inputs. See ``center`` for the modelled system.
"""

from callsure.engine.simulation.center import ContactCenterSimulation, Scenario
from callsure.engine.simulation.options import ReplayOptions
from callsure.engine.simulation.replay import (
    DayReplay,
    log_days,
    replay_day,
    replay_days,
)
from callsure.engine.simulation.workload import DayWorkload

__all__ = [
    "ContactCenterSimulation",
    "DayReplay",
    "DayWorkload",
    "ReplayOptions",
    "Scenario",
    "log_days",
    "replay_day",
    "replay_days",
]

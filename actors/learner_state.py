"""Conversion of a queue's online learners to built-in values and back.

The coordinator snapshots the learned state with msgpack, which takes no
tuples as map keys, no sets, dates or deques: this module turns a
``LearnedForecast`` (queue state, arrival and staffing profiles, running
rates) into dicts and lists of numbers and strings, and fills a fresh
``LearnedForecast`` from them. The rates' priors are not stored, because
they come from the configuration or the model file of the running server.
"""

from __future__ import annotations

from collections import deque
from datetime import date, datetime

from callsure.engine.prediction.learned import LearnedForecast
from callsure.engine.prediction.state import RECENT_WAITS

STATE_VERSION = 1


def _pairs(means: dict) -> list:
    return [[day_type, slot, value] for (day_type, slot), value in means.items()]


def _means(pairs: list) -> dict:
    return {(day_type, slot): value for day_type, slot, value in pairs}


def forecast_to_state(forecast: LearnedForecast) -> dict:
    """Return ``forecast``'s learned state as msgpack-ready built-in values."""
    state, arrivals = forecast.state, forecast.arrivals
    staffing, rates = forecast.staffing, forecast.rates
    return {
        "version": STATE_VERSION,
        "queue": {
            "waiting": {k: list(v) for k, v in state.waiting.items()},
            "in_service": dict(state.in_service),
            "agents_on": sorted(state.agents_on),
            "last_seen": dict(state.last_seen),
            "completions": list(state.completions),
            "joins": list(state.joins),
            "joins_high": list(state.joins_high),
            "abandons": list(state.abandons),
            "served_waits": list(state.served_waits),
            "time": state.time,
            "last_service_start": state.last_service_start,
        },
        "arrivals": {
            "means": _pairs(arrivals.slot_means.means),
            "current_start": (
                None
                if arrivals.current_start is None
                else arrivals.current_start.isoformat()
            ),
            "count": arrivals.count,
            "last_count": arrivals.last_count,
            "last_expected": arrivals.last_expected,
        },
        "staffing": {
            "means": _pairs(staffing.slot_means.means),
            "samples": [
                [day.isoformat(), day_type, slot, values]
                for (day, day_type, slot), values in staffing.samples.items()
            ],
        },
        "rates": {
            "handle_sum": dict(rates.handle_sum),
            "handle_count": dict(rates.handle_count),
            "exposure_s": rates.exposure_s,
            "abandons": rates.abandons,
        },
        "joins_by_priority": dict(forecast.joins_by_priority),
        "join_times": {k: list(v) for k, v in forecast.join_times.items()},
        "queued_calls": sorted(forecast.queued_calls),
        "service_types": dict(forecast.service_types),
    }


def restore_forecast(forecast: LearnedForecast, plain: dict) -> None:
    """Fill a fresh ``forecast`` from a ``forecast_to_state`` result."""
    if plain.get("version") != STATE_VERSION:
        raise ValueError(f"learner state version {plain.get('version')} is unknown")
    queue, state = plain["queue"], forecast.state
    state.waiting = {k: tuple(v) for k, v in queue["waiting"].items()}
    state.in_service = dict(queue["in_service"])
    state.agents_on = set(queue["agents_on"])
    state.last_seen = dict(queue["last_seen"])
    state.completions = deque(queue["completions"])
    state.joins = deque(queue["joins"])
    state.joins_high = deque(queue["joins_high"])
    state.abandons = deque(queue["abandons"])
    state.served_waits = deque(queue["served_waits"], maxlen=RECENT_WAITS)
    state.time = queue["time"]
    state.last_service_start = queue["last_service_start"]

    arrivals = forecast.arrivals
    arrivals.slot_means.means = _means(plain["arrivals"]["means"])
    start = plain["arrivals"]["current_start"]
    arrivals.current_start = None if start is None else datetime.fromisoformat(start)
    arrivals.count = plain["arrivals"]["count"]
    arrivals.last_count = plain["arrivals"]["last_count"]
    arrivals.last_expected = plain["arrivals"]["last_expected"]

    staffing = forecast.staffing
    staffing.slot_means.means = _means(plain["staffing"]["means"])
    staffing.samples = {
        (date.fromisoformat(day), day_type, slot): list(values)
        for day, day_type, slot, values in plain["staffing"]["samples"]
    }

    rates = forecast.rates
    rates.handle_sum.update(plain["rates"]["handle_sum"])
    rates.handle_count.update(plain["rates"]["handle_count"])
    rates.exposure_s = plain["rates"]["exposure_s"]
    rates.abandons = plain["rates"]["abandons"]

    forecast.joins_by_priority = dict(plain["joins_by_priority"])
    forecast.join_times = {k: tuple(v) for k, v in plain["join_times"].items()}
    forecast.queued_calls = set(plain["queued_calls"])
    forecast.service_types = dict(plain["service_types"])

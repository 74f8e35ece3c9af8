"""Figures of a simulated day, and their totals over several days.

Definitions
-----------
- offered: inbound calls that reached the agent queue (redials included).
- service level (live): inbound calls answered within ``service_level_s``
  over inbound calls offered, leaving out the calls that left the queue
  with a callback (the callback path is measured on its own).
- service level (all): the same over every call offered, where a call
  that took a callback counts as not answered in time.
- abandonment: abandoned calls over calls offered.
- redials: calls of a customer whose previous contact that day ended
  without service (abandoned, or with a callback still open or failed).
- dialed on time: first attempts released within ``ON_TIME_S`` of the
  promised time, over promises whose first attempt was released.
- kept: an agent took the callback inside the announced window
  ``[promised, promised + window_s]``; over promises whose customer
  answered the first dial, and over all promises made.
- request to service: from the callback request to the agent taking the
  callback; compared with, in the baseline, the time from a redialing
  customer's first unserved call to their service.
- occupancy: agents' busy time over their time on duty.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

ON_TIME_S = 60.0


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def _times(values) -> dict:
    values = np.asarray(list(values), dtype=float)
    if values.size == 0:
        return {"count": 0, "mean_s": None, "median_s": None, "p90_s": None}
    return {
        "count": int(values.size),
        "mean_s": float(values.mean()),
        "median_s": float(np.median(values)),
        "p90_s": float(np.percentile(values, 90)),
    }


def summarize_calls(results, service_level_s: float) -> dict:
    """Count the inbound calls of a run by outcome, with the service level."""
    outcomes = Counter(result.outcome for result in results)
    offered = len(results)
    in_time = sum(
        1
        for result in results
        if result.outcome == "served" and result.wait_s <= service_level_s
    )
    live = offered - outcomes["callback"]
    return {
        "offered": offered,
        "served": outcomes["served"],
        "answered_in_time": in_time,
        "abandoned": outcomes["abandoned"],
        "left_for_callback": outcomes["callback"],
        "waiting_at_end": outcomes["waiting"],
        "redials": sum(1 for result in results if result.redial),
        "synthetic_redials": sum(1 for result in results if result.synthetic),
        "service_level_live": _ratio(in_time, live),
        "service_level_all": _ratio(in_time, offered),
        "abandonment": _ratio(outcomes["abandoned"], offered),
    }


def summarize_callbacks(desk) -> dict:
    """Count offers and promises of a run and check the promise targets."""
    results = list(desk.results.values())
    states = Counter(result.state for result in results)
    dialed = [r for r in results if r.first_dial_at is not None]
    on_time = [r for r in dialed if r.dial_late_s <= ON_TIME_S]
    answered_first = [r for r in results if r.first_answered]
    kept_first = [r for r in answered_first if r.kept]
    completed = [r for r in results if r.agent_at is not None]
    return {
        "offered": desk.offered,
        "accepted": len(results),
        "declined": desk.declined,
        "not_offered_infeasible": desk.not_offered_infeasible,
        "not_offered_closing": desk.not_offered_closing,
        "states": {state: states.get(state, 0) for state in sorted(states)},
        "completed": len(completed),
        "open_at_end": states["pending"] + states["dialing"],
        "first_dialed": len(dialed),
        "dialed_on_time": len(on_time),
        "dialed_on_time_share": _ratio(len(on_time), len(dialed)),
        "max_dial_late_s": max((r.dial_late_s for r in dialed), default=None),
        "answered_first_dial": len(answered_first),
        "kept_of_answered": len(kept_first),
        "kept_share_of_answered": _ratio(len(kept_first), len(answered_first)),
        "kept": sum(1 for r in results if r.kept),
        "kept_share_of_accepted": _ratio(
            sum(1 for r in results if r.kept), len(results)
        ),
        "request_to_service": _times(r.agent_at - r.created_at for r in completed),
        "dialed_before_due": sum(r.dialed_before_due for r in results),
        "overtaking": sum(r.overtook for r in results),
        "released_overtaking": desk.released_overtaking,
        "capacity_violations": desk.capacity_violations,
    }


def occupancy(agents) -> float | None:
    """Busy time over time on duty, all agents together."""
    busy = sum(agent.busy_s for agent in agents)
    duty = sum(agent.duty_s for agent in agents)
    return _ratio(busy, duty)


def summarize_run(sim) -> dict:
    """Summarize one simulated day of one scenario."""
    summary = {
        "scenario": sim.scenario.value,
        "calls": summarize_calls(sim.results, sim.options.service_level_s),
        "redial_to_service": _times(sim.redial_times),
        "occupancy": occupancy(sim.agents.values()),
        "agents": len(sim.agents),
    }
    if sim.desk is not None:
        summary["callbacks"] = summarize_callbacks(sim.desk)
    return summary


def total(days: list[dict], scenario: str) -> dict:
    """Add up the day summaries of ``scenario``; ratios are recomputed."""
    runs = [day[scenario] for day in days]
    calls = Counter()
    for run in runs:
        calls.update({k: v for k, v in run["calls"].items() if isinstance(v, int)})
    calls = dict(calls)
    live = calls.get("offered", 0) - calls.get("left_for_callback", 0)
    calls["service_level_live"] = _ratio(calls.get("answered_in_time", 0), live)
    calls["service_level_all"] = _ratio(
        calls.get("answered_in_time", 0), calls.get("offered", 0)
    )
    calls["abandonment"] = _ratio(calls.get("abandoned", 0), calls.get("offered", 0))
    result = {
        "scenario": scenario,
        "days": len(runs),
        "calls": calls,
        "redial_to_service": _pooled(run["redial_to_service"] for run in runs),
        "occupancy": _weighted_occupancy(days, scenario),
    }
    if runs and "callbacks" in runs[0]:
        result["callbacks"] = _total_callbacks([run["callbacks"] for run in runs])
    return result


def _pooled(parts) -> dict:
    """Combine the count and mean of several days' times.

    Medians do not add up, so the total carries the count-weighted mean of
    the day medians, under a key that names it so.
    """
    parts = [p for p in parts if p["count"]]
    count = sum(p["count"] for p in parts)
    if not count:
        return {"count": 0, "mean_s": None, "median_s_weighted": None}
    mean = sum(p["mean_s"] * p["count"] for p in parts) / count
    median = sum(p["median_s"] * p["count"] for p in parts) / count
    return {"count": count, "mean_s": mean, "median_s_weighted": median}


def _weighted_occupancy(days: list[dict], scenario: str) -> float | None:
    busy = duty = 0.0
    for day in days:
        run = day[scenario]
        duty_s = day.get("duty_s", {}).get(scenario)
        if duty_s and run["occupancy"] is not None:
            busy += run["occupancy"] * duty_s
            duty += duty_s
    return _ratio(busy, duty)


def _total_callbacks(parts: list[dict]) -> dict:
    keys = (
        "offered",
        "accepted",
        "declined",
        "not_offered_infeasible",
        "not_offered_closing",
        "completed",
        "open_at_end",
        "first_dialed",
        "dialed_on_time",
        "answered_first_dial",
        "kept_of_answered",
        "kept",
        "dialed_before_due",
        "overtaking",
        "released_overtaking",
        "capacity_violations",
    )
    sums = {key: sum(part[key] for part in parts) for key in keys}
    states = Counter()
    for part in parts:
        states.update(part["states"])
    sums["states"] = dict(sorted(states.items()))
    sums["dialed_on_time_share"] = _ratio(sums["dialed_on_time"], sums["first_dialed"])
    sums["kept_share_of_answered"] = _ratio(
        sums["kept_of_answered"], sums["answered_first_dial"]
    )
    sums["kept_share_of_accepted"] = _ratio(sums["kept"], sums["accepted"])
    late = [p["max_dial_late_s"] for p in parts if p["max_dial_late_s"] is not None]
    sums["max_dial_late_s"] = max(late, default=None)
    sums["request_to_service"] = _pooled(p["request_to_service"] for p in parts)
    return sums


def targets(baseline: dict, callbacks: dict) -> dict:
    """Check the replay's targets on two summaries of the same days."""
    base_calls, cb_calls = baseline["calls"], callbacks["calls"]
    promises = callbacks["callbacks"]
    base_redials = base_calls["redials"]
    cut = _ratio(base_redials - cb_calls["redials"], base_redials)
    base_time = baseline["redial_to_service"]["mean_s"]
    cb_time = promises["request_to_service"]["mean_s"]
    speedup = (
        base_time / cb_time
        if base_time is not None and cb_time and not math.isclose(cb_time, 0.0)
        else None
    )
    checks = {
        "dialed_on_time_share": (promises["dialed_on_time_share"], 0.99),
        "kept_share_of_answered": (promises["kept_share_of_answered"], 0.95),
        "redial_cut": (cut, 0.80),
        "request_to_service_speedup": (speedup, 10.0),
    }
    result = {
        name: {
            "value": value,
            "target": target,
            "met": value is not None and value >= target,
        }
        for name, (value, target) in checks.items()
    }
    sl_base = base_calls["service_level_live"]
    sl_cb = cb_calls["service_level_live"]
    result["service_level_live_not_lower"] = {
        "value": sl_cb,
        "target": sl_base,
        "met": sl_cb is not None and sl_base is not None and sl_cb >= sl_base,
    }
    return result

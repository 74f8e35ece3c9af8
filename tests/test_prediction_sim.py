"""The queue simulator of bench/ against exact Erlang A figures."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from callsure.engine.prediction import erlang

BENCH = Path(__file__).resolve().parent.parent / "bench" / "queue_sim.py"


@pytest.fixture(scope="module")
def queue_sim():
    spec = importlib.util.spec_from_file_location("queue_sim", BENCH)
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while building.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def erlang_a_scenario(queue_sim):
    base = next(s for s in queue_sim.SCENARIOS if "θ=1.0" in s.name)
    return replace(base, horizon=150.0)


def exact_ql_m_ase(arrivals, service_rate, abandon_rate, agents):
    """E[Var(V | k)] over arrivals that wait: QL-m is E[V | k] exactly."""
    queue = erlang.queue_length_distribution(
        arrivals, service_rate, abandon_rate, agents
    )
    rates = agents * service_rate + np.arange(queue.size) * abandon_rate
    variance = np.cumsum(1.0 / rates**2)
    return float(np.sum(queue * variance) / queue.sum())


def test_exact_ase_matches_reference_value():
    assert exact_ql_m_ase(120.0, 1.0, 1.0, 100) == pytest.approx(0.00174, abs=5e-5)


def test_simulated_ql_m_ase_near_exact(queue_sim, erlang_a_scenario):
    result = queue_sim.simulate(erlang_a_scenario, seed=3)
    figures = queue_sim.score(result, queue_sim.PREDICTORS)
    ase, _, scored = figures["QL-m"]
    assert scored > 5000
    assert ase == pytest.approx(exact_ql_m_ase(120.0, 1.0, 1.0, 100), rel=0.1)


def test_ql_m_beats_delay_history(queue_sim, erlang_a_scenario):
    figures = queue_sim.score(
        queue_sim.simulate(erlang_a_scenario, seed=4), queue_sim.PREDICTORS
    )
    assert figures["QL-m"][1] < figures["QL"][1]
    assert figures["QL-m"][1] < figures["LES"][1]
    assert figures["QL-m"][1] < figures["HOL"][1]


def test_simulation_deterministic_given_seed(queue_sim, erlang_a_scenario):
    short = replace(erlang_a_scenario, horizon=30.0)
    first = queue_sim.simulate(short, seed=11)
    second = queue_sim.simulate(short, seed=11)
    assert first["actual"] == second["actual"]
    assert first["predictions"]["QL-m"] == second["predictions"]["QL-m"]

"""Discrete-event simulation of a many-server queue, scoring wait predictors.

The modelled system: ``servers`` identical agents serve one first-come
first-served queue. Callers arrive by a Poisson process (optionally with a
time-varying rate) or a renewal process with hyperexponential (H2) gaps;
service times are exponential or lognormal; each caller has an
exponential patience and abandons when it runs out before service. Time
is in units of the mean service time unless a scenario says otherwise.

Every arrival that finds all agents busy gets predictions of its
potential wait V, the time until it would reach an agent were it
infinitely patient. V is known for served callers; for a caller who
abandons, the simulation keeps a marker in its place, and V is the
moment the first agent frees up after every caller ahead has left, which
is when it would have been served (other callers unchanged).

Predictors, all made at the arrival instant from what is known then:

- ``QL``: (k + 1)/(nμ), k the callers waiting ahead;
- ``QL-m``: Σ_{i=0..k} 1/(nμ + iθ) with the true rates;
- ``LES``: the wait of the last caller to enter service;
- ``HOL``: the elapsed wait of the caller at the head of the line;
- ``model``: the prediction model's own predictor. It learns the service
  distribution (lognormal, from the logs of completed services) and the
  patience (abandons over time waited, served callers censored) online,
  and estimates E[V | state] by simulating the future of the current
  state: the residual service of each busy agent given its elapsed time,
  then fresh services, and the abandons of callers ahead. Later arrivals
  cannot overtake under first-come first-served, so they are not needed.

Scores: ASE, the mean squared error over waiting arrivals, and RRASE, its
square root over the mean V. Each scenario runs ``replications``
independent seeds; the tables give the mean and a 95 % t interval.

Run ``python bench/queue_sim.py`` (add ``--quick`` for a short check).
The run is deterministic given ``--seed``.
"""

from __future__ import annotations

import argparse
import heapq
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from scipy import special, stats

PREDICTORS = ("QL-m", "QL", "LES", "HOL")


@dataclass(frozen=True)
class Scenario:
    """One simulated system and the figures it should reproduce.

    Attributes
    ----------
    name : str
        Label in the tables.
    servers : int
        Agents n.
    arrival_rate : float
        Mean arrival rate λ (the base rate when ``amplitude`` is set).
    service_cv : float or None
        None for exponential service; else the coefficient of variation
        of a lognormal service time with mean ``mean_service``.
    abandon_rate : float
        θ; 0 means callers never abandon.
    horizon : float
        Simulated time per replication, warm-up included.
    warmup : float
        Time before which arrivals are not scored.
    arrival_scv : float
        Squared coefficient of variation of the gaps (1 Poisson; > 1 H2).
    amplitude, period : float
        λ(t) = λ (1 + amplitude sin(2πt/period)) when amplitude > 0.
    mean_service : float
        Mean service time 1/μ.
    reference : tuple of float
        Published RRASE of QL-m, QL, LES, HOL.
    reference_ase : float
        Published ASE of the best classic predictor.
    model : bool
        Whether to run the model's own predictor.
    """

    name: str
    servers: int
    arrival_rate: float
    service_cv: float | None
    abandon_rate: float
    horizon: float
    warmup: float
    arrival_scv: float = 1.0
    amplitude: float = 0.0
    period: float = 24.0
    mean_service: float = 1.0
    reference: tuple[float, ...] = ()
    reference_ase: float = math.nan
    model: bool = False


SCENARIOS = (
    Scenario(
        "M/M/100, λ=90", servers=100, arrival_rate=90.0, service_cv=None,
        abandon_rate=0.0, horizon=1500, warmup=20,
        reference=(0.311, 0.311, 0.460, 0.420), reference_ase=0.00100,
    ),
    Scenario(
        "M/M/100, λ=95", servers=100, arrival_rate=95.0, service_cv=None,
        abandon_rate=0.0, horizon=2000, warmup=30,
        reference=(0.228, 0.228, 0.329, 0.314), reference_ase=0.00200,
    ),
    Scenario(
        "M/M/100, λ=98", servers=100, arrival_rate=98.0, service_cv=None,
        abandon_rate=0.0, horizon=4000, warmup=50,
        reference=(0.139, 0.139, 0.200, 0.196), reference_ase=0.00500,
    ),
    Scenario(
        "H2(scv 4)/M/100, ρ=0.95", servers=100, arrival_rate=95.0, service_cv=None,
        abandon_rate=0.0, horizon=2000, warmup=30, arrival_scv=4.0,
        reference=(0.149, 0.149, 0.318, 0.311), reference_ase=0.00470,
    ),
    Scenario(
        "M/M/100+M, λ=120, θ=0.2", servers=100, arrival_rate=120.0, service_cv=None,
        abandon_rate=0.2, horizon=400, warmup=30,
        reference=(0.100, 0.150, 0.142, 0.141), reference_ase=0.00835,
    ),
    Scenario(
        "M/M/100+M, λ=120, θ=1.0", servers=100, arrival_rate=120.0, service_cv=None,
        abandon_rate=1.0, horizon=400, warmup=10,
        reference=(0.216, 0.266, 0.311, 0.303), reference_ase=0.00174,
    ),
    Scenario(
        "lognormal (cv 1.2), λ=100, θ=0.5", servers=100, arrival_rate=100.0,
        service_cv=1.2, abandon_rate=0.5, horizon=200, warmup=10,
        reference=(0.275, 0.281, 0.411, 0.386), reference_ase=0.00101, model=True,
    ),
    Scenario(
        "bank-like, 7 agents (minutes)", servers=7, arrival_rate=2.0,
        service_cv=1.21, abandon_rate=1 / 5.75, horizon=30000, warmup=300,
        mean_service=3.0, reference=(0.588, 0.608, 0.903, 0.728),
        reference_ase=0.444, model=True,
    ),
    Scenario(
        "time-varying λ(t), θ=0.5", servers=100, arrival_rate=100.0,
        service_cv=None, abandon_rate=0.5, horizon=240, warmup=10, amplitude=0.2,
        reference=(0.200, 0.234, 0.292, 0.283), reference_ase=0.00218, model=True,
    ),
)  # fmt: skip


class ServiceLearner:
    """The empirical distribution of recently completed service times."""

    def __init__(self, size: int = 20_000) -> None:
        self.recent: deque[float] = deque(maxlen=size)
        self.added = 0
        self.sorted = np.zeros(0)
        self.sorted_at = 0

    def add(self, duration: float) -> None:
        self.recent.append(duration)
        self.added += 1

    def values(self) -> np.ndarray:
        # Re-sort once a tenth of the sample is new: the order changes slowly.
        if self.added - self.sorted_at > max(50, len(self.recent) // 10):
            self.sorted = np.sort(np.fromiter(self.recent, float))
            self.sorted_at = self.added
        return self.sorted


@dataclass
class ModelPredictor:
    """E[V | state] by simulating the current state's future (see module doc).

    Service times are drawn from the empirical distribution of completed
    services, so no family (exponential, lognormal) is assumed; a residual
    given elapsed time a is a draw among the completed services longer
    than a, minus a. Beyond the longest one seen, the residual is the
    mean excess of the longest twentieth of services.
    """

    rng: np.random.Generator
    samples: int = 100
    service: ServiceLearner = field(default_factory=ServiceLearner)
    exposure: float = 0.0
    abandons: int = 0
    oracle: Scenario | None = None

    def patience_rate(self) -> float:
        if self.oracle is not None:
            return self.oracle.abandon_rate
        return self.abandons / self.exposure if self.exposure > 0 else 0.0

    def _residuals(self, elapsed: np.ndarray) -> np.ndarray:
        size = (self.samples, elapsed.size)
        if self.oracle is not None:
            return _oracle_residuals(self.oracle, elapsed, size, self.rng)
        values = self.service.values()
        if values.size < 50:
            return self.rng.exponential(
                max(values.mean(), 1e-9) if values.size else 1.0, size
            )
        start = np.searchsorted(values, elapsed, side="right")
        remaining = values.size - start
        pick = start + (self.rng.random(size) * np.maximum(remaining, 1)).astype(int)
        pick = np.minimum(pick, values.size - 1)
        residual = values[pick] - elapsed
        tail = values[-max(1, values.size // 20) :]
        excess = max(float(tail.mean() - tail[0]), 1e-9)
        beyond = remaining == 0
        if beyond.any():
            residual[:, beyond] = self.rng.exponential(
                excess, (self.samples, beyond.sum())
            )
        return residual

    def _fresh(self, count: int) -> np.ndarray:
        if self.oracle is not None:
            return _oracle_residuals(
                self.oracle, np.zeros(count), (1, count), self.rng
            )[0]
        values = self.service.values()
        if values.size == 0:
            return self.rng.exponential(1.0, count)
        return values[self.rng.integers(0, values.size, count)]

    def predict(self, elapsed: np.ndarray, ahead: int) -> float:
        completion = self._residuals(elapsed)
        theta = self.patience_rate()
        if theta > 0 and ahead:
            patience = self.rng.exponential(1.0 / theta, (self.samples, ahead))
        else:
            patience = np.full((self.samples, ahead), np.inf)
        pointer = np.zeros(self.samples, dtype=int)
        result = np.full(self.samples, np.nan)
        active = np.ones(self.samples, dtype=bool)
        rows = np.arange(self.samples)
        while active.any():
            server = np.argmin(completion, axis=1)
            now = completion[rows, server]
            # Callers ahead whose patience ran out before this moment left.
            while True:
                skip = active & (pointer < ahead)
                skip[skip] = patience[rows[skip], pointer[skip]] < now[skip]
                if not skip.any():
                    break
                pointer += skip
            done = active & (pointer >= ahead)
            result[done] = now[done]
            active &= ~done
            completion[rows[active], server[active]] = now[active] + self._fresh(
                int(active.sum())
            )
            pointer += active
        return float(result.mean())


def _oracle_residuals(
    scenario: Scenario, elapsed: np.ndarray, size: tuple[int, int], rng
) -> np.ndarray:
    """Residual service given elapsed time, from the true distribution."""
    if scenario.service_cv is None:
        return rng.exponential(scenario.mean_service, size)
    sigma = math.sqrt(math.log(1 + scenario.service_cv**2))
    mu = math.log(scenario.mean_service) - sigma**2 / 2
    low = stats.norm.cdf((np.log(np.maximum(elapsed, 1e-12)) - mu) / sigma)
    uniform = np.minimum(low + (1.0 - low) * rng.random(size), 1.0 - 1e-12)
    return np.exp(mu + sigma * special.ndtri(uniform)) - elapsed


def _h2_parameters(rate: float, scv: float) -> tuple[float, float, float]:
    """Return (p, rate1, rate2) of a balanced-means H2 with ``rate`` and ``scv``."""
    p = 0.5 * (1 + math.sqrt((scv - 1) / (scv + 1)))
    return p, 2 * p * rate, 2 * (1 - p) * rate


def simulate(scenario: Scenario, seed: int, model_stride: int = 0) -> dict:
    """Run one replication; return the predictions and V of waiting arrivals.

    ``model_stride`` > 0 runs the model's predictor on every that-many-th
    waiting arrival (it costs a small simulation each); the others are
    computed for every waiting arrival.
    """
    rng = np.random.default_rng(seed)
    model_rng = np.random.default_rng(seed + 10_000)
    n = scenario.servers
    service_rate = 1.0 / scenario.mean_service
    theta = scenario.abandon_rate
    base_rate = scenario.arrival_rate
    peak_rate = base_rate * (1 + scenario.amplitude)
    if scenario.service_cv is None:
        sigma = 0.0
    else:
        sigma = math.sqrt(math.log(1 + scenario.service_cv**2))
    log_mean = math.log(scenario.mean_service) - sigma**2 / 2

    def service_time() -> float:
        if scenario.service_cv is None:
            return rng.exponential(scenario.mean_service)
        return math.exp(log_mean + sigma * rng.standard_normal())

    def next_arrival(now: float) -> float:
        if scenario.arrival_scv != 1.0:
            p, rate1, rate2 = _h2_parameters(base_rate, scenario.arrival_scv)
            return now + rng.exponential(1 / rate1 if rng.random() < p else 1 / rate2)
        while True:  # thinning (Lewis and Shedler) for λ(t)
            now += rng.exponential(1 / peak_rate)
            rate = base_rate * (
                1 + scenario.amplitude * math.sin(2 * math.pi * now / scenario.period)
            )
            if rng.random() * peak_rate <= rate:
                return now

    model = ModelPredictor(model_rng) if model_stride else None
    oracle = (
        ModelPredictor(np.random.default_rng(seed + 20_000), oracle=scenario)
        if model_stride
        else None
    )
    events: list[tuple[float, int, int, int]] = []  # time, sequence, kind, data
    sequence = 0
    ARRIVAL, DEPARTURE, ABANDON = 0, 1, 2
    heapq.heappush(events, (next_arrival(0.0), sequence, ARRIVAL, 0))
    busy_since = np.full(n, np.nan)
    free_servers = list(range(n))
    queue: deque[int] = deque()
    arrival_time: dict[int, float] = {}
    ghost: set[int] = set()
    real_waiting = 0
    last_served_wait = 0.0
    callers = 0
    predictions = {name: {} for name in (*PREDICTORS, "model", "oracle")}
    actual: dict[int, float] = {}
    waiting_seen = 0

    def start_service(now: float, server: int, caller: int) -> None:
        nonlocal sequence
        busy_since[server] = now
        heapq.heappush(
            events, (now + service_time(), sequence := sequence + 1, DEPARTURE, server)
        )
        if model is not None:
            model.exposure += now - arrival_time[caller]

    while events:
        now, _, kind, data = heapq.heappop(events)
        if now > scenario.horizon:
            break
        if kind == ARRIVAL:
            caller = callers
            callers += 1
            arrival_time[caller] = now
            heapq.heappush(
                events, (next_arrival(now), sequence := sequence + 1, ARRIVAL, 0)
            )
            if free_servers:
                start_service(now, free_servers.pop(), caller)
                del arrival_time[caller]
                continue
            scored = now >= scenario.warmup
            if scored:
                k = real_waiting
                capacity = n * service_rate
                predictions["QL"][caller] = (k + 1) / capacity
                predictions["QL-m"][caller] = float(
                    np.sum(1.0 / (capacity + np.arange(k + 1) * theta))
                )
                predictions["LES"][caller] = last_served_wait
                head = next((c for c in queue if c not in ghost), None)
                predictions["HOL"][caller] = (
                    0.0 if head is None else now - arrival_time[head]
                )
                waiting_seen += 1
                if model is not None and waiting_seen % model_stride == 0:
                    predictions["model"][caller] = model.predict(now - busy_since, k)
                    predictions["oracle"][caller] = oracle.predict(now - busy_since, k)
            queue.append(caller)
            real_waiting += 1
            if theta > 0:
                heapq.heappush(
                    events,
                    (
                        now + rng.exponential(1 / theta),
                        sequence := sequence + 1,
                        ABANDON,
                        caller,
                    ),
                )
        elif kind == ABANDON:
            if data in arrival_time and data not in ghost:
                ghost.add(data)
                real_waiting -= 1
                if model is not None:
                    model.exposure += now - arrival_time[data]
                    model.abandons += 1
        else:
            server = data
            if model is not None:
                model.service.add(now - busy_since[server])
            busy_since[server] = np.nan
            while queue and queue[0] in ghost:
                caller = queue.popleft()
                ghost.discard(caller)
                actual[caller] = now - arrival_time.pop(caller)
            if queue:
                caller = queue.popleft()
                real_waiting -= 1
                wait = now - arrival_time[caller]
                actual[caller] = wait
                last_served_wait = wait
                start_service(now, server, caller)
                del arrival_time[caller]
            else:
                free_servers.append(server)
    return {"predictions": predictions, "actual": actual}


def score(
    result: dict, names: tuple[str, ...]
) -> dict[str, tuple[float, float, float]]:
    """Return (ASE, RRASE, scored count) of each predictor on callers with a known V.

    Every predictor is scored on the callers where all of ``names`` predicted,
    so their figures compare like with like.
    """
    actual = result["actual"]
    common = set(actual)
    for name in names:
        common &= set(result["predictions"][name])
    keys = sorted(common)
    truth = np.array([actual[k] for k in keys])
    figures = {}
    for name in names:
        predicted = np.array([result["predictions"][name][k] for k in keys])
        ase = float(np.mean((predicted - truth) ** 2))
        figures[name] = (ase, math.sqrt(ase) / float(np.mean(truth)), len(keys))
    return figures


def interval(values: list[float]) -> tuple[float, float]:
    """Return the mean and the half-width of a 95 % t interval."""
    array = np.asarray(values)
    if array.size < 2:
        return float(array.mean()), math.nan
    half = (
        stats.t.ppf(0.975, array.size - 1) * array.std(ddof=1) / math.sqrt(array.size)
    )
    return float(array.mean()), float(half)


def run(
    replications: int, seed: int, quick: bool, only: str = "", out=sys.stdout
) -> list[dict]:
    """Run the scenarios whose name contains ``only``; print the tables."""
    rows = []
    print(
        "| scenario | ASE of QL-m (reference) | RRASE QL-m / QL / LES / HOL "
        "(95 % CI) | reference RRASE | seconds |",
        file=out,
    )
    print("| --- | --- | --- | --- | --- |", file=out)
    model_rows = []
    for scenario in SCENARIOS:
        if only not in scenario.name:
            continue
        started = time.perf_counter()
        if quick:
            scenario = Scenario(
                **{**scenario.__dict__, "horizon": scenario.horizon / 4}
            )
        per_predictor = {name: [] for name in PREDICTORS}
        ase_best = []
        model_pairs = []
        for replication in range(replications):
            stride = 0
            if scenario.model:
                stride = 3 if scenario.servers < 20 else 4
            result = simulate(scenario, seed + 7919 * replication, stride)
            figures = score(result, PREDICTORS)
            for name in PREDICTORS:
                per_predictor[name].append(figures[name][1])
            ase_best.append(figures["QL-m"][0])
            if scenario.model:
                paired = score(result, ("QL-m", "model", "oracle"))
                model_pairs.append(
                    (
                        paired["QL-m"][1],
                        paired["model"][1],
                        paired["model"][2],
                        paired["oracle"][1],
                    )
                )
        seconds = time.perf_counter() - started
        cells = []
        for name in PREDICTORS:
            mean, half = interval(per_predictor[name])
            cells.append(f"{mean:.3f} ± {half:.3f}")
        ase_mean, ase_half = interval(ase_best)
        reference = " / ".join(f"{v:.3f}" for v in scenario.reference)
        print(
            f"| {scenario.name} | {ase_mean:.5f} ± {ase_half:.5f} "
            f"({scenario.reference_ase}) "
            f"| {' / '.join(cells)} | {reference} | {seconds:.1f} |",
            file=out,
            flush=True,
        )
        row = {"scenario": scenario.name, "rrase": per_predictor, "ase": ase_best}
        if model_pairs:
            ql_m = [p[0] for p in model_pairs]
            learned = [p[1] for p in model_pairs]
            cut = [1 - m / q for q, m in zip(ql_m, learned, strict=True)]
            row["model"] = {
                "ql_m": ql_m,
                "model": learned,
                "cut": cut,
                "scored": [p[2] for p in model_pairs],
            }
            oracle = [p[3] for p in model_pairs]
            row["model"]["oracle"] = oracle
            model_rows.append(
                (scenario.name, ql_m, learned, cut, [p[2] for p in model_pairs], oracle)
            )
        rows.append(row)
    print(file=out)
    print(
        "| scenario | RRASE QL-m | RRASE model | model's cut vs QL-m (95 % CI) "
        "| RRASE E[V | state], true distributions | callers scored per run |",
        file=out,
    )
    print("| --- | --- | --- | --- | --- | --- |", file=out)
    for name, ql_m, learned, cut, scored, oracle in model_rows:
        q_mean, q_half = interval(ql_m)
        m_mean, m_half = interval(learned)
        c_mean, c_half = interval(cut)
        o_mean, o_half = interval(oracle)
        print(
            f"| {name} | {q_mean:.3f} ± {q_half:.3f} | {m_mean:.3f} ± {m_half:.3f} "
            f"| {100 * c_mean:.1f} % ± {100 * c_half:.1f} "
            f"| {o_mean:.3f} ± {o_half:.3f} | {int(np.mean(scored))} |",
            file=out,
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--replications", type=int, default=5, help="Independent runs per scenario."
    )
    parser.add_argument("--seed", type=int, default=1, help="Base random seed.")
    parser.add_argument("--quick", action="store_true", help="Quarter-length runs.")
    parser.add_argument(
        "--only", default="", help="Run only scenarios whose name contains this."
    )
    args = parser.parse_args(argv)
    run(args.replications, args.seed, args.quick, args.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())

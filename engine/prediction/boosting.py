"""Gradient-boosted regression trees for the mean and quantiles, in numpy.

A small, dependency-free take on gradient boosting (Friedman, "Greedy
function approximation", 2001) sized for call-center histories of some
thousands to some hundred thousands of rows:

- features are cut into at most ``max_bins`` quantile bins, and splits are
  chosen from per-bin gradient sums, as histogram boosting does;
- each tree fits the negative gradient of the loss by least squares; for
  the pinball (quantile) loss its leaves are then set to the quantile of
  the residuals they hold, Friedman's line search for that loss;
- rows are subsampled per tree with a seeded generator, so a fit is
  deterministic.

A fitted model is a handful of arrays (``to_arrays``/``from_arrays``), so
it is stored in an ``.npz`` file without pickling code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEAF = -1


@dataclass
class BoostingParameters:
    """Settings of a boosted fit.

    Attributes
    ----------
    quantile : float or None
        None fits the mean (squared loss); a probability fits that quantile.
    rounds : int
        Number of trees.
    learning_rate : float
        Shrinkage applied to every tree.
    depth : int
        Depth of each tree.
    min_leaf : int
        Minimum number of rows in a leaf.
    subsample : float
        Share of rows drawn (without replacement) for each tree.
    max_bins : int
        Most quantile bins per feature.
    seed : int
        Seed of the row sampling.
    """

    quantile: float | None = None
    rounds: int = 300
    learning_rate: float = 0.05
    depth: int = 3
    min_leaf: int = 40
    subsample: float = 0.8
    max_bins: int = 32
    seed: int = 0


class BoostedTrees:
    """An additive model of regression trees over binned features."""

    def __init__(
        self,
        edges: list[np.ndarray],
        base: float,
        features: np.ndarray,
        bins: np.ndarray,
        values: np.ndarray,
    ):
        # Trees are complete binary trees stored level by level: node i has
        # children 2i + 1 and 2i + 2; features[t, i] == LEAF marks a leaf.
        self.edges = edges
        self.base = base
        self.features = features
        self.bins = bins
        self.values = values

    @staticmethod
    def bin_edges(matrix: np.ndarray, max_bins: int) -> list[np.ndarray]:
        """Return per-feature cut points at the quantiles of ``matrix``."""
        probabilities = np.linspace(0, 1, max_bins + 1)[1:-1]
        return [np.unique(np.quantile(column, probabilities)) for column in matrix.T]

    @staticmethod
    def to_bins(matrix: np.ndarray, edges: list[np.ndarray]) -> np.ndarray:
        """Return the bin of each value; bin b covers (edge[b-1], edge[b]]."""
        binned = np.empty(matrix.shape, dtype=np.int16)
        for j, cuts in enumerate(edges):
            binned[:, j] = np.searchsorted(cuts, matrix[:, j], side="left")
        return binned

    @classmethod
    def fit(
        cls, matrix: np.ndarray, target: np.ndarray, parameters: BoostingParameters
    ) -> BoostedTrees:
        """Fit the model to rows ``matrix`` (n, features) and ``target`` (n,)."""
        matrix = np.asarray(matrix, dtype=float)
        target = np.asarray(target, dtype=float)
        if matrix.ndim != 2 or matrix.shape[0] != target.shape[0]:
            raise ValueError(
                f"matrix must be (n, features) with n = {target.shape[0]}, "
                f"was {matrix.shape}"
            )
        edges = cls.bin_edges(matrix, parameters.max_bins)
        binned = cls.to_bins(matrix, edges)
        quantile = parameters.quantile
        base = float(
            np.mean(target) if quantile is None else np.quantile(target, quantile)
        )
        prediction = np.full(target.shape, base)
        nodes = 2 ** (parameters.depth + 1) - 1
        features = np.full((parameters.rounds, nodes), LEAF, dtype=np.int16)
        bins = np.zeros((parameters.rounds, nodes), dtype=np.int16)
        values = np.zeros((parameters.rounds, nodes))
        rng = np.random.default_rng(parameters.seed)
        size = max(1, int(parameters.subsample * target.size))

        for tree in range(parameters.rounds):
            rows = np.sort(rng.choice(target.size, size=size, replace=False))
            residual = target[rows] - prediction[rows]
            if quantile is None:
                gradient = residual
            else:
                gradient = np.where(residual > 0, quantile, quantile - 1.0)
            leaves = _grow(
                binned[rows], gradient, parameters, features[tree], bins[tree]
            )
            for node, members in leaves.items():
                if quantile is None:
                    step = residual[members].mean()
                else:
                    step = np.quantile(residual[members], quantile)
                values[tree, node] = parameters.learning_rate * step
            prediction += _tree_values(binned, features[tree], bins[tree], values[tree])
        return cls(edges, base, features, bins, values)

    def _tree_sum(self, binned: np.ndarray) -> np.ndarray:
        total = np.zeros(binned.shape[0])
        for tree in range(self.features.shape[0]):
            total += _tree_values(
                binned, self.features[tree], self.bins[tree], self.values[tree]
            )
        return total

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Return the model's value for each row of ``matrix`` (n, features)."""
        matrix = np.atleast_2d(np.asarray(matrix, dtype=float))
        return self.base + self._tree_sum(self.to_bins(matrix, self.edges))

    def to_arrays(self, prefix: str) -> dict[str, np.ndarray]:
        """Return the model as named arrays, for ``numpy.savez``."""
        lengths = np.array([len(e) for e in self.edges])
        return {
            f"{prefix}edges": np.concatenate(self.edges) if self.edges else np.zeros(0),
            f"{prefix}edge_lengths": lengths,
            f"{prefix}base": np.array([self.base]),
            f"{prefix}features": self.features,
            f"{prefix}bins": self.bins,
            f"{prefix}values": self.values,
        }

    @classmethod
    def from_arrays(cls, arrays, prefix: str) -> BoostedTrees:
        """Rebuild a model saved with ``to_arrays``."""
        lengths = arrays[f"{prefix}edge_lengths"]
        flat = arrays[f"{prefix}edges"]
        edges = np.split(flat, np.cumsum(lengths)[:-1]) if lengths.size else []
        return cls(
            list(edges),
            float(arrays[f"{prefix}base"][0]),
            arrays[f"{prefix}features"],
            arrays[f"{prefix}bins"],
            arrays[f"{prefix}values"],
        )


def _tree_values(
    binned: np.ndarray, features: np.ndarray, bins: np.ndarray, values: np.ndarray
) -> np.ndarray:
    rows = np.arange(binned.shape[0])
    node = np.zeros(binned.shape[0], dtype=np.int64)
    while True:
        feature = features[node]
        inner = feature != LEAF
        if not inner.any():
            return values[node]
        right = binned[rows[inner], feature[inner]] > bins[node[inner]]
        node[inner] = 2 * node[inner] + 1 + right


def _grow(
    binned: np.ndarray,
    gradient: np.ndarray,
    parameters: BoostingParameters,
    features: np.ndarray,
    bins: np.ndarray,
) -> dict[int, np.ndarray]:
    """Grow one least-squares tree on ``gradient``; fill its split arrays and
    return the rows of each leaf by node index."""
    frontier = {0: np.arange(gradient.size)}
    leaves = {}
    for _level in range(parameters.depth):
        next_frontier = {}
        for node, members in frontier.items():
            split = _best_split(binned[members], gradient[members], parameters)
            if split is None:
                leaves[node] = members
                continue
            feature, cut = split
            right = binned[members, feature] > cut
            features[node] = feature
            bins[node] = cut
            next_frontier[2 * node + 1] = members[~right]
            next_frontier[2 * node + 2] = members[right]
        frontier = next_frontier
    leaves.update(frontier)
    return leaves


def _best_split(
    binned: np.ndarray, gradient: np.ndarray, parameters: BoostingParameters
) -> tuple[int, int] | None:
    count = gradient.size
    if count < 2 * parameters.min_leaf:
        return None
    total = gradient.sum()
    best_gain, best = 1e-12, None
    for feature in range(binned.shape[1]):
        column = binned[:, feature]
        width = int(column.max()) + 1
        if width < 2:
            continue
        sums = np.cumsum(np.bincount(column, weights=gradient, minlength=width))[:-1]
        counts = np.cumsum(np.bincount(column, minlength=width))[:-1]
        valid = (counts >= parameters.min_leaf) & (
            count - counts >= parameters.min_leaf
        )
        if not valid.any():
            continue
        gain = sums**2 / np.maximum(counts, 1) + (total - sums) ** 2 / np.maximum(
            count - counts, 1
        )
        gain = np.where(valid, gain - total**2 / count, -np.inf)
        cut = int(np.argmax(gain))
        if gain[cut] > best_gain:
            best_gain, best = float(gain[cut]), (feature, cut)
    return best

"""How big an evaluation is before it runs: Gram grids, kernels, SVM fits and a time estimate.

:func:`estimate_cost` is a small pure function of (N, T, config): it counts what
``evaluate_dataset`` will compute, following the protocol's enumeration (one ``gram_grid``
call per sigma_w and RNN-P step order; one SVM fit per distinct (kernel, C) on the
validation split; the chosen ones again on each of the 4 test folds), and turns the counts
into seconds with throughput constants measured on a 2-core CPU (``gram_grid`` at N=400,
T=16, L=2, 4 (sigma_u, sigma_b) pairs: 0.21 s median of 3; libsvm on a precomputed
200x200 kernel: about 1.2 ms). A GPU computes kernels far faster: a worker measures its own
two rates when it starts (:mod:`.calibrate`, :mod:`worker.calibration`), and callers pass them
as :class:`CostConstants`. The time is an order of magnitude, not a promise: large C values can
make single fits much slower.

The 1-NN families cost their distances, computed once per job from every series to the
training columns (all N under cross-validation, ``train_samples`` for a TRAIN/TEST split):
1NN-DTW fills ``sum over pairs of band width x length`` DP cells (:func:`dtw_pair_cells`;
the training series among themselves once per pair), 1NN-ED one value per pair, step and
feature. Their fits are an argmin each, not an SVM.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from .solvers import LINEAR_KERNEL_ROWS

__all__ = ["CostConstants", "CostEstimate", "DEFAULT_CONSTANTS", "LANDMARK_STAGES", "STAGES", "dense_host_bytes",
           "dtw_pair_cells", "estimate_cost", "eta_seconds", "gigabytes", "grid_cells", "grid_seconds",
           "landmark_host_bytes", "nearest_seconds", "overall_fraction", "N_FOLDS"]

#: A dense job's progress stages in order, as the worker and evaluate_dataset report them
#: (a dense job's fanned-out grid "blocks" are part of its "kernels").
STAGES = ("loading", "kernels", "validation fits", "test folds", "report", "writing")
#: A landmark job's: the selection's kernels and fits, then every row's K(X, Z) "blocks".
LANDMARK_STAGES = ("loading", "kernels", "validation fits", "blocks", "test folds", "report", "writing")
#: Other names of the same stages: the landmark path's, and the forests' labels.
_STAGE_NAMES = {"validation": "validation fits", "test": "test folds"}

N_FOLDS = 4
#: seconds per (sample pair, step, layer, (sigma_u, sigma_b) pair, sweep) of a Gram grid, 2-core CPU
SECONDS_PER_CELL = 1.0e-8
#: seconds per squared training sample of one precomputed-kernel SVM fit, and a floor per fit
SECONDS_PER_FIT_SAMPLE2, SECONDS_PER_FIT_MIN = 3.0e-8, 1.0e-3
#: JAX import and compilation, once per job; drawing the report's figures
SECONDS_FIXED, SECONDS_REPORT = 3.0, 2.0
#: 1NN-DTW (dtaidistance's C, 2 OpenMP threads): seconds per DP cell and per pair (the call
#: and the matrix's assembly). Measured on this 2-core CPU while it was shared: 1.7e8 to
#: 3.7e8 cells/s at T >= 100, 300 to 570 ns per pair at T = 8; the feature count m does
#: not change the rate (the DP, not the cost, dominates).
SECONDS_PER_DTW_CELL, SECONDS_PER_DTW_PAIR = 5.0e-9, 1.0e-7
#: 1NN-ED: seconds per (pair, step, feature) of the direct differences (3e8 to 9e8 per s).
SECONDS_PER_ED_VALUE = 2.0e-9
#: A 1-NN fit: the argmin over one block of distances, per (row, column).
SECONDS_PER_ARGMIN = 2.0e-9
_NEAREST = ("1NN-ED", "1NN-DTW")


@dataclass(frozen=True)
class CostConstants:
    """The rates that turn counts into seconds: the Gram grids' (device) and the dense SVM
    fits' (libsvm, host CPU). The defaults are the 2-core CPU's above; the other terms (1-NN,
    baselines, start-up) keep that CPU's constants everywhere, as nothing measures them."""

    seconds_per_cell: float = SECONDS_PER_CELL
    seconds_per_fit_sample2: float = SECONDS_PER_FIT_SAMPLE2
    basis: str = "a 2-core CPU"  #: where the rates come from, for :meth:`CostEstimate.describe`

    @classmethod
    def from_calibration(cls, calibration: Mapping[str, Any], basis: str | None = None) -> "CostConstants":
        """The rates a worker measured (``worker.calibration``'s record); a missing or
        unusable one keeps its default."""
        def rate(name: str, default: float) -> float:
            value = calibration.get(name)
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
            return float(value) if ok else default

        return cls(rate("seconds_per_cell", SECONDS_PER_CELL),
                   rate("seconds_per_fit_sample2", SECONDS_PER_FIT_SAMPLE2),
                   basis or f"{calibration.get('device') or 'a worker'} (calibrated)")


DEFAULT_CONSTANTS = CostConstants()

_RECURRENT = {  # family: (pool, directions, permutations)
    "RNN": ("last", ("fwd",), False),
    "RNN-P": ("last", ("fwd", "rev"), True),
    "BI-RNN": ("last", ("bi",), False),
    "RNN-AVG": ("avg", ("fwd",), False),
    "BI-RNN-AVG": ("avg", ("bi",), False),
}


@dataclass(frozen=True)
class CostEstimate:
    """What one evaluation computes, and roughly how long it takes."""

    n_samples: int
    steps: int
    grids: int  #: gram_grid calls (one fused pass each)
    kernels: int  #: distinct recurrent Gram matrices read from those grids
    baseline_kernels: int  #: RBF / POLY / MLP kernels and RF forests
    validation_fits: int  #: one per distinct (model, C) on the validation split
    test_fits: int  #: the chosen models on every test fold (assuming one tie per family)
    kernel_seconds: float
    validation_seconds: float
    test_seconds: float
    seconds: float  #: total, with a fixed start-up cost
    method: str = "dense"  #: "dense" Gram matrices or "landmarks" (Nystrom features)
    host_bytes: int = 0  #: peak memory of the job's process, estimated
    basis: str = "a 2-core CPU"  #: whose rates the seconds assume (:attr:`CostConstants.basis`)
    block_seconds: float = 0.0  #: of ``kernel_seconds``, a landmark job's K(X, Z) blocks at full N

    @property
    def fit_seconds(self) -> float:
        return self.validation_seconds + self.test_seconds

    def stage_seconds(self) -> dict[str, float]:
        """Expected seconds per stage of :data:`STAGES` (the weights of overall progress)."""
        seconds = {"loading": SECONDS_FIXED, "kernels": round(self.kernel_seconds - self.block_seconds, 3),
                   "validation fits": self.validation_seconds, "blocks": self.block_seconds,
                   "test folds": self.test_seconds, "report": SECONDS_REPORT, "writing": 0.5}
        return {stage: seconds[stage] for stage in (LANDMARK_STAGES if self.method == "landmarks" else STAGES)}

    @property
    def fits(self) -> int:
        return self.validation_fits + self.test_fits

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "fits": self.fits, "fit_seconds": round(self.fit_seconds, 3),
                "stage_seconds": self.stage_seconds(), "text": self.describe()}

    def describe(self) -> str:
        """One line for a person, e.g. before submitting."""
        how = "landmark features" if self.method == "landmarks" else "Gram grid pass(es)"
        return (f"N={self.n_samples}, T={self.steps}: {self.grids} {how}, "
                f"{self.kernels} recurrent kernel(s), {self.baseline_kernels} baseline model(s), "
                f"{self.fits} SVM fit(s); about {_duration(self.seconds)} on {self.basis} and "
                f"{gigabytes(self.host_bytes)} of memory")


def gigabytes(count: float) -> str:
    return f"{count / 1e9:.1f} GB" if count >= 1e8 else f"{count / 1e6:.0f} MB"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _recurrent_families(config: Any) -> tuple[list[str], int]:
    """The config's recurrent families, and RNN-P's user orders (each one more grid pass)."""
    families = [f for f in config.families if f in _RECURRENT]
    return families, len(config.rnnp_orders) if "RNN-P" in families else 0


def _recurrent_counts(config: Any, steps: int) -> tuple[int, int, int]:
    """(grids, distinct kernels, distinct (kernel, C) fits) of the recurrent families."""
    families, extra_orders = _recurrent_families(config)
    if not families:
        return 0, 0, 0
    per_setting = len(config.sigma_u) * len(config.sigma_b) * len(config.layers) * len(config.kinds)
    kernel_ids: set[tuple] = set()
    for family in families:
        pool, directions, permutations = _RECURRENT[family]
        variants = [(None, d) for d in directions]
        if permutations and steps == 1:
            variants = [(None, "fwd")]  # forward == reversed
        variants += [(order, "fwd") for order in range(extra_orders)] if permutations else []
        kernel_ids.update((pool, variant) for variant in variants)
    kernels = len(kernel_ids) * per_setting * len(config.sigma_w)
    grids = len(config.sigma_w) * (1 + extra_orders)
    return grids, kernels, kernels * len(config.C)


def _sweeps(config: Any, steps: int) -> int:
    """The engine sweeps of a dense job's grid passes: forward kernels need one per pass,
    reversed and bidirectional ones (RNN-P, BI-*) two; RNN-P's user orders are forward."""
    families, extra_orders = _recurrent_families(config)
    if not families:
        return 0
    both = any("bi" in _RECURRENT[f][1] or (_RECURRENT[f][2] and steps > 1) for f in families)
    return len(config.sigma_w) * ((2 if both else 1) + extra_orders)


def _family_sweeps(family: str) -> int:
    """Sweeps of one family's chosen kernel: two for the bidirectional families, one for the
    other recurrent ones, none for RBF (its K(X, Z) is computed from the rows, not in blocks)."""
    if family not in _RECURRENT:
        return 0
    return 2 if "bi" in _RECURRENT[family][1] else 1


def _baseline_counts(config: Any) -> tuple[int, int]:
    """(models, validation fits) of the baseline families."""
    models = fits = 0
    kinds = len(config.kinds)
    for family in config.families:
        if family == "RBF":
            count, per_model = len(config.rbf_gamma), len(config.C)
        elif family == "POLY":
            count = len(config.poly_degree) * len(config.poly_scale) * len(config.poly_offset)
            per_model = len(config.C)
        elif family == "MLP":
            count = 0
            for depth in config.mlp_layers:
                fixed = depth if config.mlp_fixed_layers is None else sum(
                    1 for k in config.mlp_fixed_layers if k < depth)
                count += fixed * ("ntk" in config.kinds) + ("ck" in config.kinds and fixed > 0)
            count = count if kinds else 0
            per_model = len(config.mlp_C)
        elif family == "RF":
            count, per_model = len(config.rf_n_estimators) * len(config.rf_max_features), 1
        else:
            continue
        models += count
        fits += count * per_model
    return models, fits


def dtw_pair_cells(steps: int, window: float | None, lengths: Sequence[int] | np.ndarray | None = None) -> float:
    """The mean DP cells of one DTW pair: band width x length (:func:`.nearest.dtw_cells`),
    over every pair of ``lengths`` (all ``steps`` when None)."""
    from .nearest import dtw_cells

    if lengths is None:
        return float(dtw_cells(steps, steps, window))
    values, counts = np.unique(np.asarray(lengths), return_counts=True)
    total = 0.0
    for start in range(0, len(values), 256):  # bounded memory for many distinct lengths
        cells = dtw_cells(values[start:start + 256, None], values[None, :], window)
        total += float(np.sum(cells * counts[start:start + 256, None] * counts[None, :]))
    return total / float(counts.sum()) ** 2


def nearest_seconds(n_samples: int, steps: int, config: Any, *, train_samples: int | None = None,
                    lengths: Sequence[int] | np.ndarray | None = None) -> float:
    """Seconds of the 1-NN families' distances: every series to the training columns (all N
    by default), DTW's training pairs once each."""
    families = set(config.families) & set(_NEAREST)
    if not families:
        return 0.0
    n, columns = float(n_samples), float(n_samples if train_samples is None else min(train_samples, n_samples))
    seconds = 0.0
    if "1NN-DTW" in families:
        pairs = columns * (columns - 1) / 2 + (n - columns) * columns
        cells = dtw_pair_cells(steps, config.dtw_window, lengths)
        seconds += pairs * (cells * SECONDS_PER_DTW_CELL + SECONDS_PER_DTW_PAIR)
    if "1NN-ED" in families:
        seconds += n * columns * steps * max(1, config.features_per_step) * SECONDS_PER_ED_VALUE
    return seconds


def grid_cells(n_samples: int, steps: int, sigma_pairs: int, layers: int, sweeps: int = 2) -> float:
    """The cells :data:`SECONDS_PER_CELL` prices: (sample pair on or above the diagonal, step,
    layer, (sigma_u, sigma_b) pair, sweep) of Gram grid passes that make ``sweeps`` sweeps in
    all (a pass of every direction makes two: fwd and rev)."""
    return sweeps * n_samples * (n_samples + 1) / 2 * steps * sigma_pairs * layers


def grid_seconds(n_samples: int, steps: int, config: Any, *, seconds_per_cell: float = SECONDS_PER_CELL) -> float:
    """Seconds of a dense job's recurrent Gram grids (the upper triangle of each grid pass)."""
    pairs = len(config.sigma_u) * len(config.sigma_b)
    return grid_cells(n_samples, steps, pairs, max(config.layers), _sweeps(config, steps)) * seconds_per_cell


def estimate_cost(n_samples: int, steps: int, config: Any, *,
                  constants: CostConstants = DEFAULT_CONSTANTS, train_samples: int | None = None,
                  lengths: Sequence[int] | np.ndarray | None = None, test_folds: int = N_FOLDS,
                  selection_pairs: int = 1) -> CostEstimate:
    """Count the grids, kernels and fits of evaluating (N, T) data with ``config``.

    Args:
        n_samples: N, the number of sequences.
        steps: T, the number of steps per sequence (the longest, for unequal lengths).
        config: an :class:`~rntk_core.evaluation.config.EvaluationConfig` (only read).
        constants: the grids' and the SVM fits' rates; the default is a 2-core CPU's, a
            worker's own come from :meth:`CostConstants.from_calibration`.
        train_samples: the training series of a predefined TRAIN/TEST split (1-NN distances
            go to those only); None: cross-validation over all N.
        lengths: the series' lengths, when unequal (1NN-DTW's pairs cost their own).
        test_folds, selection_pairs: the protocol's test folds and the (fit, score) pairs that
            select (:func:`..protocol.protocol_shape`); the defaults are the UCI protocol's
            (4 folds, one validation split), which is all a dataset's stored shape tells.
    """
    if n_samples < 1 or steps < 1:
        raise ValueError(f"need N >= 1 and T >= 1, got N={n_samples}, T={steps}")
    folds, pairs_k = max(1, int(test_folds)), max(1, int(selection_pairs))
    # rows of a test fold's fit, and of a selection fit (half of N on the UCI holdout)
    fold_rows = float(train_samples) if train_samples and folds == 1 else 0.75 * n_samples
    if getattr(config, "landmarks", 0):
        return _landmark_cost(n_samples, steps, config, constants, folds, pairs_k, fold_rows)
    grids, kernels, recurrent_fits = _recurrent_counts(config, steps)
    baseline_models, baseline_fits = _baseline_counts(config)
    pairs = n_samples * (n_samples + 1) / 2  # only tiles on or above the diagonal
    kernel_seconds = grid_seconds(n_samples, steps, config, seconds_per_cell=constants.seconds_per_cell)
    kernel_seconds += baseline_models * pairs * 1e-8  # elementwise baseline kernels are cheap
    # 1-NN distances are computed on first use, in the validation fits.
    nearest = nearest_seconds(n_samples, steps, config, train_samples=train_samples, lengths=lengths)
    validation_fits = (recurrent_fits + baseline_fits) * pairs_k
    nearest_families = sum(1 for family in config.families if family in _NEAREST)
    test_fits = folds * len(config.families)
    train = _selection_fit_rows(n_samples, fold_rows, pairs_k)
    per_fit = max(SECONDS_PER_FIT_MIN, constants.seconds_per_fit_sample2 * train * train)
    fold_fit = max(SECONDS_PER_FIT_MIN, constants.seconds_per_fit_sample2 * fold_rows ** 2)
    argmin = SECONDS_PER_ARGMIN * n_samples * n_samples  # one 1-NN fit, at most N x N
    validation_seconds = validation_fits * per_fit + nearest + nearest_families * argmin * pairs_k
    test_seconds = (test_fits - folds * nearest_families) * fold_fit + folds * nearest_families * argmin
    total = SECONDS_FIXED + kernel_seconds + validation_seconds + test_seconds + SECONDS_REPORT
    return CostEstimate(n_samples, steps, grids, kernels, baseline_models, validation_fits,
                        test_fits, round(kernel_seconds, 3), round(validation_seconds, 3),
                        round(test_seconds, 3), round(total, 3) if math.isfinite(total) else float("inf"),
                        "dense", dense_host_bytes(n_samples, steps, config), constants.basis)


#: Dense baselines hold about this many N x N float64 arrays at their peak (distances, the
#: kernel, libsvm's slices): an N = 10,000 RBF job peaked at 4.1 GB of worker RSS.
_BASELINE_SQUARES = 5
#: The process itself (Python, JAX, the engine's tile working set), bytes.
_PROCESS_BYTES = 600 << 20


def dense_host_bytes(n_samples: int, steps: int, config: Any) -> int:
    """Peak memory of a dense job: its Gram grids (per sweep, 4 readouts x L x sigma pairs of
    N x N float32, all held) and the baselines' N x N float64 arrays."""
    squares = float(n_samples) ** 2
    pairs = len(config.sigma_u) * len(config.sigma_b)
    recurrent = _sweeps(config, steps) * 4 * max(config.layers) * pairs * squares * 4
    baselines = _BASELINE_SQUARES * squares * 8 if set(config.families) & {"RBF", "POLY", "MLP", "1NN-ED",
                                                                          "1NN-DTW"} else 0
    inputs = 4 * n_samples * steps * max(1, config.features_per_step) * 8
    return int(recurrent + baselines + inputs + _PROCESS_BYTES)


def landmark_host_bytes(n_samples: int, steps: int, config: Any) -> int:
    """Peak memory of a landmark job: one block of K(X, Z) for a grid pass's kernels, one
    kernel's K(X, Z) and features (N x M float64 each), the linear solver's gathered rows of
    one batch of problems (bounded, see ``linear_svm.BATCH_BYTES``) and the inputs. M and
    the block's rows are at most N (every row is a landmark past it)."""
    m = min(config.landmarks, n_samples)
    recurrent = any(family in _RECURRENT for family in config.families)
    kernels_per_pass = 2 * 4 * max(config.layers) * len(config.sigma_u) * len(config.sigma_b) if recurrent else 1
    block = kernels_per_pass * min(config.block_rows, n_samples) * m * 8 * 2
    features = 2 * n_samples * m * 8
    solver = min(2 * (256 << 20), 3 * n_samples * m * 8)  # a batch of rows, host and device
    rows = _libsvm_rows(n_samples, config)
    if rows:  # libsvm on Phi Phi': the kernel, its evaluated rows, and libsvm's cache per thread
        solver = max(solver, 8 * rows * 2 * rows + 2 * min(_LIBSVM_CACHE_BYTES, 4 * rows * rows))
    inputs = 4 * n_samples * steps * max(1, config.features_per_step) * 8
    return int(block + features + solver + inputs + _PROCESS_BYTES)


#: scikit-learn's SVC cache_size (200 MB), per fitting thread (libsvm caches float32 rows of Q).
_LIBSVM_CACHE_BYTES = 200 << 20


def _libsvm_rows(n_samples: int, config: Any) -> int:
    """The most rows of a kernel Phi Phi' that libsvm fits in a landmark job (0: none): a whole
    fit's, or past LINEAR_KERNEL_ROWS a one-vs-one pair's working set of at most that many."""
    if getattr(config, "solver", "auto") == "jax":
        return 0
    return min(max(min(n_samples, config.selection_samples), math.ceil(0.75 * n_samples)), LINEAR_KERNEL_ROWS)


def _linear_fit_seconds(rows: float, m: int, config: Any, constants: CostConstants, cs: int = 1) -> float:
    """Linear fits of ``cs`` values of C on one feature matrix of ``rows`` training rows and M
    features: the interior point's ~25 iterations of O(rows M^2) per C, or, where libsvm
    takes it (on a CPU), whichever is less: forming Phi Phi' once and one precomputed-kernel
    fit per C, or past LINEAR_KERNEL_ROWS rows, per C, about one such fit on that many (each
    pair's working sets) plus the margins of every row (measured: 5 s per C at 20,000 rows,
    13 s at 80,000, M = 512, 4 classes, 2 cores). The estimate does not know the backend."""
    interior = cs * rows * min(m, rows) ** 2 * 25 * 2 * 3e-10
    if getattr(config, "solver", "auto") == "jax":
        return interior
    kernel_rows = min(rows, LINEAR_KERNEL_ROWS)
    form = 2 * kernel_rows * kernel_rows * m * 1e-10
    fit = max(SECONDS_PER_FIT_MIN, constants.seconds_per_fit_sample2 * kernel_rows * kernel_rows)
    if rows > LINEAR_KERNEL_ROWS:
        return min(interior, cs * (form + fit + rows * m * 1e-8))
    return min(interior, form + cs * fit)


def _selection_fit_rows(rows: float, fold_rows: float, pairs: int) -> float:
    """Rows of one selection fit: half of ``rows`` on one holdout split, else (k - 1) / k of
    the training part over k CV pairs."""
    return rows / 2 if pairs == 1 else min(rows, fold_rows) * (pairs - 1) / pairs


def _landmark_cost(n_samples: int, steps: int, config: Any, constants: CostConstants, folds: int,
                   pairs: int, fold_rows: float) -> CostEstimate:
    """Landmarks: the grid on the selection subsample against M landmarks, then the chosen
    kernels (one per family) on all N rows, per test fold (``fold_rows`` training rows each);
    linear fits as :func:`_linear_fit_seconds`."""
    grids, kernels, recurrent_fits = _recurrent_counts(config, steps)
    baseline_models, baseline_fits = _baseline_counts(config)
    m, seconds_per_cell = min(config.landmarks, n_samples), constants.seconds_per_cell
    selection = min(n_samples, config.selection_samples)
    settings = len(config.sigma_u) * len(config.sigma_b) * max(config.layers)
    kernel_seconds = _sweeps(config, steps) * selection * m * steps * settings * seconds_per_cell
    families = len(config.families)
    sweeps = sum(_family_sweeps(family) for family in config.families)  # the chosen kernels' blocks
    block_seconds = folds * sweeps * n_samples * m * steps * max(config.layers) * seconds_per_cell
    kernel_seconds += block_seconds
    validation_fits = (recurrent_fits + baseline_fits) * pairs
    # a CV selects on a subsample of TRAIN (at most selection_samples rows), a holdout on its halves
    selection_rows = _selection_fit_rows(selection, min(config.selection_samples, fold_rows), pairs)
    models = (kernels + baseline_models) * pairs  # each fits every C on one feature matrix
    validation_seconds = models * _linear_fit_seconds(selection_rows, m, config, constants, cs=len(config.C))
    test_fits = folds * families
    test_seconds = test_fits * _linear_fit_seconds(fold_rows, m, config, constants)
    total = SECONDS_FIXED + kernel_seconds + validation_seconds + test_seconds + SECONDS_REPORT
    return CostEstimate(n_samples, steps, grids, kernels, baseline_models, validation_fits, test_fits,
                        round(kernel_seconds, 3), round(validation_seconds, 3), round(test_seconds, 3),
                        round(total, 3), "landmarks", landmark_host_bytes(n_samples, steps, config),
                        constants.basis, round(block_seconds, 3))


def overall_fraction(stage_seconds: Mapping[str, float], stage: str, done: int, total: int) -> float:
    """Overall progress in [0, 1]: finished stages plus the current one's done/total, each
    weighted by its expected seconds. The order is :data:`LANDMARK_STAGES` where the weights
    have "blocks", else :data:`STAGES`; a dense job's "blocks" count as its "kernels", and
    "validation" / "test" and labels such as "test folds: forests" as their stage. Other
    stages count as not started."""
    order = LANDMARK_STAGES if "blocks" in stage_seconds else STAGES
    stage = stage.split(":")[0].strip()
    stage = _STAGE_NAMES.get(stage, stage)
    if stage == "blocks" and stage not in order:
        stage = "kernels"
    if stage not in order:
        return 0.0
    weights = [max(stage_seconds.get(name, 0.0), 1e-3) for name in order]
    index = order.index(stage)
    part = min(max(done / total, 0.0), 1.0) if total > 0 else 0.0
    return min((sum(weights[:index]) + weights[index] * part) / sum(weights), 1.0)


def eta_seconds(elapsed: float, fraction: float, expected_total: float) -> float:
    """Seconds left: the estimate early on, then extrapolated from the real pace."""
    by_estimate = max(expected_total - elapsed, 0.0)
    if fraction <= 0.0:
        return by_estimate
    by_pace = elapsed * (1.0 - fraction) / fraction
    trust = min(fraction / 0.2, 1.0)  # after 20% the measured pace decides alone
    return round(trust * by_pace + (1.0 - trust) * by_estimate, 1)

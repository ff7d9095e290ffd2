"""The evaluation config: which kernels, which hyperparameter grids, which protocol.

One pydantic model, :class:`EvaluationConfig`. Every field is optional; the defaults
reproduce the paper's UCI evaluation (see ``PROTOCOL-uci.md``). Unknown fields are
rejected, every grid must be non-empty, and duplicate grid values are dropped with the
first occurrence kept (the protocol enumerates grids in their given order).

Baseline grids that the paper takes from its references:

- RBF: ``gamma`` in {2^-5, 2^-3, ..., 2^9} on squared Euclidean distance, the main ``C`` grid.
- POLY: ``(poly_scale * <x, x'> + poly_offset) ** poly_degree`` with the main ``C`` grid;
  degree {1, 2, 3} and scale {0.001, 0.01, 0.1} follow the caret ``svmPoly`` grid used by
  Fernandez-Delgado et al. (JMLR 2014).
- MLP: the ReLU MLP NTK/CK of Arora et al. (ICLR 2020): ``mlp_layers`` in 1..5, every number
  of fixed bottom layers 0..L-1 (``mlp_fixed_layers=None``), ``C`` in {10^-2, ..., 10^4}.
- RF: random forest with 500 trees and ``sqrt`` features per split.
- 1NN-ED and 1NN-DTW: the time-series archives' reference classifiers (no hyperparameters;
  DTW's Sakoe-Chiba window ``dtw_window``, full by default).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Sequence, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .solvers import Solver

__all__ = [
    "ALL_FAMILIES",
    "BASELINE_FAMILIES",
    "ConfigError",
    "MAX_GRID_VALUES",
    "EvaluationConfig",
    "Family",
    "Kind",
    "RECURRENT_FAMILIES",
    "error_message",
    "load_config",
    "parse_config",
    "used_settings",
]

Family = Literal[
    "RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF", "POLY", "MLP", "RF", "1NN-ED", "1NN-DTW"
]
Kind = Literal["ck", "ntk"]

RECURRENT_FAMILIES: tuple[str, ...] = ("RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG")
BASELINE_FAMILIES: tuple[str, ...] = ("RBF", "POLY", "MLP", "RF", "1NN-ED", "1NN-DTW")
ALL_FAMILIES: tuple[str, ...] = RECURRENT_FAMILIES + BASELINE_FAMILIES
KINDS: tuple[str, ...] = ("ck", "ntk")

# Strict numbers: "1" or true in a JSON config is a mistake, not a value.
PositiveFloat = Annotated[float, Field(strict=True, gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(strict=True, ge=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(strict=True, ge=1)]
NonNegativeInt = Annotated[int, Field(strict=True, ge=0)]
UnitFraction = Annotated[float, Field(strict=True, gt=0, le=1, allow_inf_nan=False)]

# Upper bounds that keep one job's cost finite and its numbers representable: a C list of
# 10^5 values, 10^7 trees, 10^9 layers or sigma_w = 1e308 were accepted once, and ran for
# minutes or failed later. In the types, so /openapi.json states them too.
MAX_GRID_VALUES = 100
Sigma = Annotated[float, Field(strict=True, gt=0, le=100, allow_inf_nan=False)]
BiasSigma = Annotated[float, Field(strict=True, ge=0, le=100, allow_inf_nan=False)]
Penalty = Annotated[float, Field(strict=True, gt=0, le=1e12, allow_inf_nan=False)]
Depth = Annotated[int, Field(strict=True, ge=1, le=64)]
Scale = Annotated[float, Field(strict=True, gt=0, le=1e6, allow_inf_nan=False)]
Offset = Annotated[float, Field(strict=True, ge=0, le=1e6, allow_inf_nan=False)]
Degree = Annotated[int, Field(strict=True, ge=1, le=20)]
FixedLayers = Annotated[int, Field(strict=True, ge=0, le=63)]
Trees = Annotated[int, Field(strict=True, ge=1, le=10_000)]

_T = TypeVar("_T")


#: Families that have landmark (Nystrom) features.
LANDMARK_FAMILIES: tuple[str, ...] = ("RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF")
#: Landmarks of a job routed to the landmark path by ``scale: auto``.
AUTO_LANDMARKS = 1024


class ConfigError(ValueError):
    """A config file cannot be read, is not JSON, or fails validation."""


def _dedupe(values: Sequence[_T]) -> list[_T]:
    """Drop repeated values, keeping the first occurrence of each."""
    seen: set[Any] = set()
    kept: list[_T] = []
    for value in values:
        key = tuple(value) if isinstance(value, list) else value
        if key not in seen:
            seen.add(key)
            kept.append(value)
    return kept


def _check_names(values: Any, allowed: Sequence[str], what: str) -> Any:
    """Reject unknown names with one message that lists them all."""
    if isinstance(values, list):
        unknown = [v for v in values if isinstance(v, str) and v not in allowed]
        if unknown:
            raise ValueError(
                f"unknown {what} {', '.join(map(repr, _dedupe(unknown)))}; "
                f"allowed: {', '.join(allowed)}"
            )
    return values


class EvaluationConfig(BaseModel):
    """What to evaluate on a dataset and how (the paper's protocol by default).

    Grids are lists; the evaluation enumerates their cartesian product. ``sigma_*`` are
    the standard deviations of the RNN's input weights (w), recurrent weights (u) and
    biases (b); ``layers`` is the number of recurrent layers L; ``C`` is the SVC penalty.
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    families: list[Family] = Field(
        default_factory=lambda: ["RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF"],
        description="Kernel families to evaluate, recurrent and baselines.",
    )
    kinds: list[Kind] = Field(
        default_factory=lambda: ["ck", "ntk"],
        description="Kernel kinds: conjugate kernel (ck) and/or neural tangent kernel (ntk).",
    )
    sigma_w: list[Sigma] = Field(default_factory=lambda: [math.sqrt(2.0)], max_length=MAX_GRID_VALUES,
        description="Std of the input weights w (one Gram grid pass each).")
    sigma_u: list[Sigma] = Field(default_factory=lambda: [0.25, 0.5], max_length=MAX_GRID_VALUES,
        description="Std of the recurrent weights u.")
    sigma_b: list[BiasSigma] = Field(default_factory=lambda: [0.001, 0.1], max_length=MAX_GRID_VALUES,
        description="Std of the biases b (0 allowed).")
    layers: list[Depth] = Field(default_factory=lambda: [1, 2], max_length=MAX_GRID_VALUES,
        description="Recurrent depths L.")
    C: list[Penalty] = Field(default_factory=lambda: [0.01, 1.0, 100.0, 1e4, 1e6], max_length=MAX_GRID_VALUES,
        description="SVM penalties for the recurrent, RBF and POLY families.")
    normalize: Literal["max_row_norm", "standardize", "none"] = Field(
        default="max_row_norm",
        description="max_row_norm divides X by its largest row norm (one scalar per dataset); "
        "standardize first gives every feature mean 0 and std 1 (for raw units), then does the same.",
    )
    protocol: Literal["auto", "predefined", "stratified"] = Field(
        default="auto",
        description="auto uses the dataset's predefined splits when it has them, else stratified.",
    )
    seed: Annotated[int, Field(strict=True, ge=0, le=2**32 - 1)] = Field(
        default=0, description="Seed of the stratified splits (datasets without predefined splits).")
    cv_folds: Annotated[int, Field(strict=True, ge=2, le=50)] = Field(
        default=5,
        description="k of the stratified k-fold cross-validation inside TRAIN that chooses "
        "hyperparameters for a TRAIN/TEST split (.ts archives); fewer when a class is smaller.",
    )
    dtw_window: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)] | None = Field(
        default=None,
        description="1NN-DTW's Sakoe-Chiba half-width as a fraction of the longer series; "
        "null for the full window.",
    )
    solver: Solver = Field(
        default="auto",
        description="C-SVM solver: libsvm (scikit-learn's SVC), jax (the batched interior-point "
        "solver, same classifier, bounded time at any C) or auto (libsvm first, capped in SMO steps, "
        "then jax for the fits libsvm does not finish; on every backend). With landmarks, on a CPU, "
        "libsvm fits on the features' kernel up to 8,192 training rows first; jax beyond, and on a GPU.",
    )

    landmarks: Annotated[int, Field(strict=True, ge=0, le=65_536)] = Field(
        default=0, description="Landmark sequences M of the Nystrom path for large N: every kernel is "
        "approximated from K(X, Z) against M training rows and the C-SVMs are linear on its features. "
        "0: dense Gram matrices.")
    selection_samples: Annotated[int, Field(strict=True, ge=10, le=10_000_000)] = Field(
        default=4096, description="With landmarks: hyperparameters are selected on a stratified "
        "subsample of at most this many selection rows; the chosen kernels then use every row.")
    scale: Literal["auto", "dense"] = Field(
        default="auto", description="auto: a job whose dense Gram matrices would not fit its worker's "
        f"memory runs with landmarks ({AUTO_LANDMARKS} unless set) instead of being refused; dense: refuse it.")
    landmark_method: Literal["stratified", "kmeans++"] = Field(
        default="stratified", description="With landmarks: how landmark rows are drawn from the "
        "training rows: uniformly within each class, or by k-means++ seeding in input space.")
    block_rows: Annotated[int, Field(strict=True, ge=16, le=1 << 20)] = Field(
        default=4096, description="With landmarks: rows of X per block of K(X, Z) (the unit of work "
        "and of the zarr store's chunks); likewise for a dense job whose grids a service fans out "
        "over its workers, as blocks of K(X, X).")
    rnnp_orders: list[Annotated[list[NonNegativeInt], Field(min_length=1)]] = Field(
        max_length=MAX_GRID_VALUES,
        default_factory=list,
        description="Extra step orders for RNN-P besides forward and reversed (which are "
        "always evaluated and dropped here if repeated); each a permutation of range(T).",
    )
    features_per_step: PositiveInt = Field(
        default=1, description="m: a table row of d features becomes d / m steps of m features."
    )
    rbf_gamma: list[Scale] = Field(default_factory=lambda: [2.0**k for k in range(-5, 10, 2)],
                                  max_length=MAX_GRID_VALUES,
        description="RBF: gamma on squared Euclidean distance.")
    poly_degree: list[Degree] = Field(default_factory=lambda: [1, 2, 3], max_length=MAX_GRID_VALUES,
        description="POLY: degrees.")
    poly_scale: list[Scale] = Field(default_factory=lambda: [0.001, 0.01, 0.1], max_length=MAX_GRID_VALUES,
        description="POLY: scale of the inner product.")
    poly_offset: list[Offset] = Field(default_factory=lambda: [1.0], max_length=MAX_GRID_VALUES,
        description="POLY: offsets.")
    mlp_layers: list[Depth] = Field(default_factory=lambda: [1, 2, 3, 4, 5], max_length=MAX_GRID_VALUES,
        description="MLP: depths.")
    mlp_fixed_layers: list[FixedLayers] | None = Field(
        max_length=MAX_GRID_VALUES,
        default=None,
        description="Fixed bottom layers of the MLP NTK; None means every value 0..L-1 for each L.",
    )
    mlp_C: list[Penalty] = Field(default_factory=lambda: [10.0**k for k in range(-2, 5)], max_length=MAX_GRID_VALUES,
        description="MLP: SVM penalties.")
    rf_n_estimators: list[Trees] = Field(default_factory=lambda: [500], max_length=MAX_GRID_VALUES,
        description="RF: numbers of trees.")
    rf_max_features: list[Literal["sqrt", "log2"] | UnitFraction] = Field(
        max_length=MAX_GRID_VALUES,
        default_factory=lambda: ["sqrt"],
        description="Features tried per split: 'sqrt', 'log2' or a fraction in (0, 1].",
    )

    @field_validator("families", mode="before")
    @classmethod
    def _known_families(cls, value: Any) -> Any:
        return _check_names(value, ALL_FAMILIES, "families")

    @field_validator("kinds", mode="before")
    @classmethod
    def _known_kinds(cls, value: Any) -> Any:
        return _check_names(value, KINDS, "kinds")

    @field_validator(
        "families", "kinds", "sigma_w", "sigma_u", "sigma_b", "layers", "C", "rbf_gamma",
        "poly_degree", "poly_scale", "poly_offset", "mlp_layers", "mlp_fixed_layers", "mlp_C",
        "rf_n_estimators", "rf_max_features",
    )
    @classmethod
    def _non_empty_unique(cls, value: list[Any] | None) -> list[Any] | None:
        if value is None:
            return None
        if not value:
            raise ValueError("must list at least one value")
        return _dedupe(value)

    @field_validator("rnnp_orders")
    @classmethod
    def _permutations(cls, orders: list[list[int]]) -> list[list[int]]:
        lengths = {len(order) for order in orders}
        if len(lengths) > 1:
            raise ValueError(f"all orders must have the same length T, got lengths {sorted(lengths)}")
        for k, order in enumerate(orders):
            if sorted(order) != list(range(len(order))):
                raise ValueError(f"order {k} is not a permutation of 0..{len(order) - 1}: {order}")
        # Forward and reversed are always evaluated; repeating them would double their votes.
        if orders:
            t = len(orders[0])
            builtin = {tuple(range(t)), tuple(range(t - 1, -1, -1))}
            orders = [order for order in orders if tuple(order) not in builtin]
        return _dedupe(orders)

    @model_validator(mode="after")
    def _landmark_families(self) -> "EvaluationConfig":
        if self.landmarks:
            unsupported = [f for f in self.families if f not in LANDMARK_FAMILIES]
            if unsupported:
                raise ValueError(f"families {', '.join(unsupported)} have no landmark features; with "
                                 f"landmarks, use {', '.join(LANDMARK_FAMILIES)}")
        return self

    def rnnp_orders_for(self, n_steps: int) -> list[tuple[int, ...]]:
        """All RNN-P step orders for sequences of ``n_steps``: forward, reversed, then extras.

        Raises:
            ValueError: if the extra orders were written for a different T.
        """
        if self.rnnp_orders and len(self.rnnp_orders[0]) != n_steps:
            raise ValueError(
                f"rnnp_orders are permutations of {len(self.rnnp_orders[0])} steps, "
                f"but the dataset has T = {n_steps}"
            )
        forward = tuple(range(n_steps))
        orders = [forward, forward[::-1]] + [tuple(order) for order in self.rnnp_orders]
        return _dedupe(orders)  # T = 1: forward == reversed


#: The settings that only matter when their family runs.
_FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    "RNN-P": ("rnnp_orders",),
    "RBF": ("rbf_gamma",),
    "POLY": ("poly_degree", "poly_scale", "poly_offset"),
    "MLP": ("mlp_layers", "mlp_fixed_layers", "mlp_C"),
    "RF": ("rf_n_estimators", "rf_max_features"),
    "1NN-DTW": ("dtw_window",),
}
_RECURRENT_FIELDS = ("sigma_w", "sigma_u", "sigma_b", "layers")


def used_settings(config: EvaluationConfig) -> dict[str, Any]:
    """The config as JSON, without the settings of families that do not run.

    ``parse_config`` of the result gives back a config that evaluates the same way (the
    dropped fields take their defaults, which nothing reads).
    """
    data = config.model_dump(mode="json")
    families = set(config.families)
    unused = [name for family, names in _FAMILY_FIELDS.items() if family not in families for name in names]
    if not families & set(RECURRENT_FAMILIES):
        unused += _RECURRENT_FIELDS
        if "MLP" not in families:
            unused.append("kinds")
    if not families & (set(RECURRENT_FAMILIES) | {"RBF", "POLY"}):
        unused.append("C")
    return {name: value for name, value in data.items() if name not in unused}


def error_message(item: Mapping[str, Any]) -> str:
    """pydantic's message for one error, with an upper bound said as the limit it is."""
    if item["type"] == "less_than_equal":
        return f"at most {item['ctx']['le']:g} (the limit), got {item['input']!r}"
    return str(item["msg"]).removeprefix("Value error, ")


def _format_errors(error: ValidationError) -> str:
    """One clause per problem, ``field[index]: message``; unknown fields listed together."""
    clauses: list[str] = []
    unknown: list[str] = []
    for item in error.errors():
        location = ""
        for part in item["loc"]:
            location += f"[{part}]" if isinstance(part, int) else (f".{part}" if location else str(part))
        if item["type"] == "extra_forbidden":
            unknown.append(repr(location))
        else:
            clauses.append(f"{location or 'config'}: {error_message(item)}")
    if unknown:
        clauses.insert(
            0,
            f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
            f"(allowed: {', '.join(EvaluationConfig.model_fields)})",
        )
    return "; ".join(clauses)


def parse_config(data: Mapping[str, Any]) -> EvaluationConfig:
    """Validate a mapping (e.g. parsed JSON) into an :class:`EvaluationConfig`.

    Raises:
        ConfigError: naming every invalid or unknown field.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
    try:
        return EvaluationConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(f"invalid config: {_format_errors(exc)}") from exc


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ConfigError(f"duplicate keys in config: {', '.join(repeated)}")
    return dict(pairs)


def _reject_constant(name: str) -> Any:
    raise ConfigError(f"{name} is not allowed in a config")


def load_config(path: str | Path) -> EvaluationConfig:
    """Read and validate a JSON config file; an empty object ``{}`` gives the defaults.

    Raises:
        ConfigError: if the file cannot be read, is not a JSON object, or fails validation.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p.name}: cannot read config ({exc})") from exc
    try:
        data = json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{p.name}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from exc
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc}") from exc
    try:
        return parse_config(data)
    except ConfigError as exc:
        raise ConfigError(f"{p.name}: {exc}") from exc

"""scikit-learn on the engine, for local use: an RNTK C-SVM classifier and an RNTK kernel callable.

    from rntk_core.evaluation.sklearn import RNTKClassifier, RNTKKernel

    RNTKClassifier(kind="ntk", pool="last", direction="bi", layers=2, sigma_b=0.1, C=10).fit(X, y)
    SVC(kernel=RNTKKernel(sigma_b=0.1))          # sklearn calls kernel(X, Y) -> K(X, Y)

Rows are sequences, in sklearn's 2-D convention: ``X`` is (n_samples, n_steps *
features_per_step), each row the sequence's steps one after the other, the
``features_per_step`` values of step 0 first::

    columns  [s0 f0, s0 f1, ..., s0 f(m-1), s1 f0, ..., s(T-1) f(m-1)]
    X_2d = X_3d.reshape(len(X_3d), -1)     # from (n, T, m); back: X_2d.reshape(n, -1, m)

With ``features_per_step=1`` (the default) every column is one step of one feature, the
convention of the paper's tabular (UCI) experiments. Every row is a full-length sequence
(no ``lengths``); scale X as you would for any SVM (``StandardScaler`` in a ``Pipeline``,
or the service's ``max_row_norm``: ``X / max_i ||x_i||``).

Both compute the Gram matrix with :func:`rntk_core.gram` (JAX), in float64 by default so that
a row of K(X, X_train) does not depend on which other rows were computed with it.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data
except ImportError:  # pragma: no cover - scikit-learn 1.4 and 1.5
    def validate_data(estimator: BaseEstimator, X: Any, y: Any = "no_validation", *, reset: bool = True,
                      **check_params: Any) -> Any:
        return estimator._validate_data(X, y, reset=reset, **check_params)

__all__ = ["RNTKClassifier", "RNTKKernel"]

#: ``direction`` as these estimators name it -> the engine's name.
DIRECTIONS = {"uni": "fwd", "bi": "bi"}
KINDS = ("ntk", "ck")
POOLS = ("last", "avg")
DTYPES = ("float64", "float32")


def _check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


def _check_number(value: Any, name: str, *, allow_zero: bool = False) -> float:
    valid = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    if not valid or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {bound}; got {value!r}")
    return float(value)


def _check_count(value: Any, name: str) -> int:
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1; got {value!r}")
    return int(value)


class RNTKKernel(BaseEstimator):
    """The RNTK as a kernel callable: ``kernel(X, Y)`` is the (n_X, n_Y) Gram matrix K(X, Y).

    For ``SVC(kernel=RNTKKernel(...))``, ``KernelRidge`` and anything else that takes
    ``kernel(X, Y)``. ``Y=None`` (or ``Y is X``) computes K(X, X) once per symmetric pair.
    Being an estimator only for its parameters, it nests in searches:
    ``GridSearchCV(SVC(kernel=RNTKKernel()), {"kernel__sigma_b": [0.0, 0.1], "C": [1, 10]})``.

    Parameters are :func:`rntk_core.gram`'s: ``kind`` "ntk" or "ck"; ``pool`` "last" (the
    output at the final step) or "avg" (the sum over steps); ``direction`` "uni" (forward
    only) or "bi" (forward + time-reversed); ``layers``; ``sigma_w``, ``sigma_u``, ``sigma_b``;
    ``features_per_step`` m (columns per step, see the module's docstring); ``dtype``
    "float64" or "float32" (the JAX computation; the matrix returned is float64).
    """

    def __init__(self, kind: str = "ntk", pool: str = "last", direction: str = "uni", layers: int = 1,
                 sigma_w: float = 2**0.5, sigma_u: float = 1.0, sigma_b: float = 0.0,
                 features_per_step: int = 1, dtype: str = "float64") -> None:
        self.kind = kind
        self.pool = pool
        self.direction = direction
        self.layers = layers
        self.sigma_w = sigma_w
        self.sigma_u = sigma_u
        self.sigma_b = sigma_b
        self.features_per_step = features_per_step
        self.dtype = dtype

    def gram_params(self) -> dict[str, Any]:
        """The keyword arguments of :func:`rntk_core.gram` these parameters stand for, checked."""
        return {
            "kind": _check_choice(self.kind, "kind", KINDS),
            "pool": _check_choice(self.pool, "pool", POOLS),
            "direction": DIRECTIONS[_check_choice(self.direction, "direction", tuple(DIRECTIONS))],
            "layers": _check_count(self.layers, "layers"),
            "sigma_w": _check_number(self.sigma_w, "sigma_w"),
            "sigma_u": _check_number(self.sigma_u, "sigma_u"),
            "sigma_b": _check_number(self.sigma_b, "sigma_b", allow_zero=True),
            "dtype": _check_choice(self.dtype, "dtype", DTYPES),
        }

    def sequences(self, X: Any, name: str = "X") -> np.ndarray:
        """(n, n_steps * m) rows as the engine's (n, n_steps, m) sequences, float64."""
        array = np.asarray(X, dtype=np.float64)
        m = _check_count(self.features_per_step, "features_per_step")
        if array.ndim != 2:
            raise ValueError(f"{name} must be 2-D (n_samples, n_steps * features_per_step); got shape {array.shape}")
        if array.shape[1] == 0 or array.shape[1] % m:
            raise ValueError(f"{name} has {array.shape[1]} columns, not a positive multiple of "
                             f"features_per_step={m}")
        return array.reshape(array.shape[0], array.shape[1] // m, m)

    def __call__(self, X: Any, Y: Any = None) -> np.ndarray:
        """K(X, Y), shape (n_X, n_Y), float64; K(X, X) when ``Y`` is None or ``X`` itself."""
        import rntk_core

        params = self.gram_params()
        x = self.sequences(X, "X")
        y = None if Y is None or Y is X else self.sequences(Y, "Y")
        if y is not None and y.shape[1:] != x.shape[1:]:
            raise ValueError(f"X has {x.shape[1] * x.shape[2]} columns but Y has {y.shape[1] * y.shape[2]}")
        return np.asarray(rntk_core.gram(x, y, **params), dtype=np.float64)


class RNTKClassifier(ClassifierMixin, BaseEstimator):
    """A C-SVM on an RNTK kernel: sklearn's ``SVC(kernel="precomputed")`` over :func:`rntk_core.gram`.

    ``fit`` keeps X and computes K(X, X); ``predict`` and ``decision_function`` compute
    K(X_new, X_train). Multiclass is one-vs-one (libsvm), the decision function one-vs-rest
    shaped, as for ``SVC``.

    Parameters: the kernel's, as for :class:`RNTKKernel` (``kind``, ``pool``, ``direction``,
    ``layers``, ``sigma_w``, ``sigma_u``, ``sigma_b``, ``features_per_step``, ``dtype``), and the
    SVM's ``C``, ``class_weight`` and ``tol``. ``X`` is (n_samples, n_steps * features_per_step).

    Attributes after ``fit``: ``classes_``, ``n_features_in_`` (``feature_names_in_`` for a
    DataFrame), ``n_steps_``, ``kernel_`` (the :class:`RNTKKernel` used), ``svc_`` (the fitted
    ``SVC``), ``X_fit_`` (the training rows), ``support_`` (indices of the support vectors).
    """

    def __init__(self, kind: str = "ntk", pool: str = "last", direction: str = "uni", layers: int = 1,
                 sigma_w: float = 2**0.5, sigma_u: float = 1.0, sigma_b: float = 0.0, C: float = 1.0,
                 features_per_step: int = 1, dtype: str = "float64", class_weight: dict | str | None = None,
                 tol: float = 1e-3) -> None:
        self.kind = kind
        self.pool = pool
        self.direction = direction
        self.layers = layers
        self.sigma_w = sigma_w
        self.sigma_u = sigma_u
        self.sigma_b = sigma_b
        self.C = C
        self.features_per_step = features_per_step
        self.dtype = dtype
        self.class_weight = class_weight
        self.tol = tol

    def _kernel(self) -> RNTKKernel:
        kernel = RNTKKernel(kind=self.kind, pool=self.pool, direction=self.direction, layers=self.layers,
                            sigma_w=self.sigma_w, sigma_u=self.sigma_u, sigma_b=self.sigma_b,
                            features_per_step=self.features_per_step, dtype=self.dtype)
        kernel.gram_params()  # every parameter checked before any work
        return kernel

    def fit(self, X: Any, y: Any) -> "RNTKClassifier":
        """Fit the SVM on K(X, X). X: (n_samples, n_steps * features_per_step); y: (n_samples,)."""
        kernel = self._kernel()
        C = _check_number(self.C, "C")
        tol = _check_number(self.tol, "tol")
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        steps = kernel.sequences(X).shape[1]
        svc = SVC(kernel="precomputed", C=C, class_weight=self.class_weight, tol=tol)
        svc.fit(kernel(X), y)
        self.kernel_, self.svc_, self.X_fit_, self.n_steps_ = kernel, svc, X, steps
        self.classes_ = svc.classes_
        self.support_ = svc.support_
        return self

    def _test_kernel(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self.kernel_(X, self.X_fit_)

    def decision_function(self, X: Any) -> np.ndarray:
        """``SVC.decision_function`` on K(X, X_train): (n,) for two classes, else (n, n_classes)."""
        kernel = self._test_kernel(X)
        return self.svc_.decision_function(kernel)

    def predict(self, X: Any) -> np.ndarray:
        """The predicted class of each row of X (n_samples, n_steps * features_per_step)."""
        kernel = self._test_kernel(X)
        return self.svc_.predict(kernel)

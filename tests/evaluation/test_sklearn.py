"""scikit-learn on the engine: RNTKClassifier passes sklearn's estimator checks and works in
GridSearchCV and a Pipeline; RNTKKernel is rntk_core.gram as a kernel callable."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.datasets import load_iris
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
from sklearn.utils.estimator_checks import parametrize_with_checks

import rntk_core
from rntk_core.evaluation.sklearn import RNTKClassifier, RNTKKernel
from tests.helpers import assert_close


@parametrize_with_checks([RNTKClassifier()])
def test_sklearn_estimator_checks(estimator, check) -> None:
    check(estimator)


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    X, y = load_iris(return_X_y=True)
    return X / np.linalg.norm(X, axis=1).max(), y  # the service's max_row_norm


def test_grid_search_over_two_sigma_b_and_two_c(iris) -> None:
    X, y = iris
    search = GridSearchCV(RNTKClassifier(layers=2), {"sigma_b": [0.0, 0.1], "C": [1.0, 100.0]}, cv=3).fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_params_["sigma_b"] in (0.0, 0.1) and search.best_score_ > 0.9
    assert search.best_estimator_.get_params()["layers"] == 2 and search.score(X, y) > 0.9


def test_pipeline_with_a_scaler(iris) -> None:
    X, y = iris
    pipeline = make_pipeline(StandardScaler(), RNTKClassifier(direction="bi", pool="avg", kind="ck", C=10.0))
    pipeline.fit(X[::2], y[::2])
    assert pipeline.score(X[1::2], y[1::2]) > 0.85
    assert pipeline.decision_function(X[1::2]).shape == (75, 3)
    restored = pickle.loads(pickle.dumps(pipeline))
    assert np.array_equal(restored.predict(X[1::2]), pipeline.predict(X[1::2]))


def test_classifier_is_an_svc_on_the_engines_gram(iris) -> None:
    """The same fit as SVC(kernel="precomputed") on rntk_core.gram, column layout included."""
    X, y = iris
    params = {"kind": "ntk", "pool": "last", "layers": 2, "sigma_u": 0.5, "sigma_b": 0.1}
    model = RNTKClassifier(direction="bi", features_per_step=2, C=10.0, **params).fit(X[::2], y[::2])
    sequences = X.reshape(len(X), 2, 2)  # columns: step 0's two features, then step 1's
    train = rntk_core.gram(sequences[::2], direction="bi", dtype="float64", **params)
    test = rntk_core.gram(sequences[1::2], sequences[::2], direction="bi", dtype="float64", **params)
    reference = SVC(kernel="precomputed", C=10.0).fit(train, y[::2])
    assert model.n_steps_ == 2 and model.n_features_in_ == 4
    np.testing.assert_allclose(model.decision_function(X[1::2]), reference.decision_function(test), atol=1e-8)


def test_kernel_callable_is_rntk_core_gram(iris) -> None:
    X, y = iris
    kernel = RNTKKernel(kind="ck", pool="avg", direction="bi", layers=2, sigma_u=0.5, sigma_b=0.1)
    expected = rntk_core.gram(X, kind="ck", pool="avg", direction="bi", layers=2, sigma_u=0.5, sigma_b=0.1,
                              dtype="float64")
    assert_close(kernel(X), expected, 1e-12, "K(X, X)")
    assert_close(kernel(X[:20], X), expected[:20], 1e-12, "K(X[:20], X)")
    assert kernel(X[:20], X).shape == (20, 150) and kernel(X).dtype == np.float64
    single = RNTKKernel(dtype="float32")(X)
    assert_close(single, rntk_core.gram(X, dtype="float64"), 1e-5, "float32")

    svc = SVC(kernel=kernel, C=10.0).fit(X[::2], y[::2])
    assert svc.score(X[1::2], y[1::2]) > 0.85
    # nested parameters: a search over the kernel's sigma_b and the SVM's C
    search = GridSearchCV(SVC(kernel=RNTKKernel()), {"kernel__sigma_b": [0.0, 0.1], "C": [1.0, 10.0]}, cv=3)
    assert search.fit(X, y).best_score_ > 0.9
    assert clone(svc).kernel.get_params() == kernel.get_params()


@pytest.mark.parametrize(("params", "message"), [
    ({"direction": "fwd"}, "direction must be one of 'uni', 'bi'"),
    ({"layers": 0}, "layers must be an integer >= 1"),
    ({"sigma_u": -1.0}, "sigma_u must be a finite number > 0"),
    ({"C": 0}, "C must be a finite number > 0"),
    ({"features_per_step": 3}, "has 4 columns, not a positive multiple of features_per_step=3"),
])
def test_bad_parameters_say_what_is_wrong(iris, params, message) -> None:
    X, y = iris
    with pytest.raises(ValueError, match=message):
        RNTKClassifier(**params).fit(X, y)

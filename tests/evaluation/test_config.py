"""Tests for rntk_core.evaluation.config: the contract defaults, validation messages and JSON loading."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from rntk_core.evaluation.config import ALL_FAMILIES, ConfigError, EvaluationConfig, load_config, parse_config
from tests.helpers import SHARED

CONTRACT = json.loads(
    """{"families": ["RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF"],
        "kinds": ["ck", "ntk"], "sigma_w": [1.4142135623730951], "sigma_u": [0.25, 0.5],
        "sigma_b": [0.001, 0.1], "layers": [1, 2], "C": [0.01, 1, 100, 10000, 1000000],
        "normalize": "max_row_norm", "protocol": "auto", "seed": 0}"""
)


def _protocol_grid() -> dict[str, list[float]]:
    """The grid as ../shared/PROTOCOL-uci.md states it (an independent source of the defaults)."""
    text = (SHARED / "PROTOCOL-uci.md").read_text()
    grid = {}
    for name in ("su", "sb", "C"):
        match = re.search(rf"^\s*- {name} in \{{([^}}]*)\}}", text, re.M)
        assert match, f"PROTOCOL-uci.md no longer states the {name} grid"
        grid[name] = [float(value) for value in match.group(1).split(",")]
    layers = re.search(r"^\s*- L in \{([^}]*)\}", text, re.M).group(1)
    grid["L"] = [int(value) for value in layers.split(",")]
    return grid


@pytest.mark.skipif(not (SHARED / "PROTOCOL-uci.md").is_file(), reason="../shared is not available")
def test_defaults_are_the_protocols_grid() -> None:
    grid = _protocol_grid()
    config = EvaluationConfig()
    assert config.sigma_u == grid["su"] and config.sigma_b == grid["sb"]
    assert config.C == grid["C"] and config.layers == grid["L"]
    assert config.sigma_w == [math.sqrt(2)] and config.kinds == ["ck", "ntk"]
    assert {"RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF"} <= set(config.families)


def test_config_round_trips() -> None:
    config = EvaluationConfig()
    assert EvaluationConfig.model_validate_json(config.model_dump_json()) == config


def test_extra_defaults_reproduce_paper() -> None:
    config = EvaluationConfig()
    assert config.rbf_gamma == [2.0**k for k in (-5, -3, -1, 1, 3, 5, 7, 9)]
    assert config.features_per_step == 1
    assert config.rnnp_orders == []
    assert config.mlp_C == [0.01, 0.1, 1, 10, 100, 1000, 10000]
    assert config.mlp_fixed_layers is None


def test_every_field_optional() -> None:
    assert parse_config({}) == EvaluationConfig()


def test_accepts_all_family_names() -> None:
    config = parse_config({"families": list(ALL_FAMILIES)})
    assert config.families == [
        "RNN", "RNN-P", "BI-RNN", "RNN-AVG", "BI-RNN-AVG", "RBF", "POLY", "MLP", "RF", "1NN-ED", "1NN-DTW"
    ]


def test_unknown_field_named() -> None:
    with pytest.raises(ValidationError, match="sigma_x"):
        EvaluationConfig.model_validate({"sigma_x": [1.0]})
    with pytest.raises(ConfigError) as info:
        parse_config({"sigma_x": [1.0], "colour": "red"})
    assert "unknown fields 'sigma_x', 'colour'" in str(info.value)


def test_unknown_family_and_kind_named() -> None:
    with pytest.raises(ConfigError, match=r"unknown families 'LSTM', 'GRU'.*allowed: RNN"):
        parse_config({"families": ["RNN", "LSTM", "GRU"]})
    with pytest.raises(ConfigError, match=r"kinds: unknown kinds 'nngp'"):
        parse_config({"kinds": ["ck", "nngp"]})


def test_duplicates_removed_in_order() -> None:
    config = parse_config(
        {"families": ["RBF", "RNN", "RBF"], "kinds": ["ntk", "ck", "ntk"], "C": [100, 1, 100.0], "layers": [2, 1, 2]}
    )
    assert config.families == ["RBF", "RNN"]
    assert config.kinds == ["ntk", "ck"]
    assert config.C == [100.0, 1.0]
    assert config.layers == [2, 1]


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"families": []}, "families: must list at least one value"),
        ({"kinds": []}, "kinds: must list at least one value"),
        ({"sigma_w": [0.0]}, "sigma_w[0]: Input should be greater than 0"),
        ({"sigma_u": [0.25, -0.5]}, "sigma_u[1]: Input should be greater than 0"),
        ({"sigma_b": [-0.1]}, "sigma_b[0]: Input should be greater than or equal to 0"),
        ({"C": [1, 0]}, "C[1]: Input should be greater than 0"),
        ({"C": []}, "C: must list at least one value"),
        ({"layers": [0]}, "layers[0]: Input should be greater than or equal to 1"),
        ({"layers": [1.5]}, "layers[0]"),
        ({"layers": [True]}, "layers[0]"),
        ({"sigma_u": ["0.5"]}, "sigma_u[0]"),
        ({"sigma_u": 0.5}, "sigma_u"),
        ({"normalize": "l2"}, "normalize: Input should be 'max_row_norm', 'standardize' or 'none'"),
        ({"protocol": "random"}, "protocol: Input should be 'auto', 'predefined' or 'stratified'"),
        ({"seed": -1}, "seed"),
        ({"features_per_step": 0}, "features_per_step"),
        ({"rbf_gamma": [0]}, "rbf_gamma[0]"),
        ({"poly_degree": [0]}, "poly_degree[0]"),
        ({"mlp_layers": []}, "mlp_layers"),
        ({"rf_max_features": ["all"]}, "rf_max_features[0]"),
        ({"rnnp_orders": [[0, 2, 1, 1]]}, "not a permutation of 0..3"),
        ({"rnnp_orders": [[1, 0], [0, 2, 1]]}, "same length"),
        ({"rnnp_orders": [[]]}, "rnnp_orders[0]"),
    ],
)
def test_bad_values_rejected(data: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data)
    assert fragment in str(info.value)


def test_non_finite_rejected() -> None:
    with pytest.raises(ConfigError, match="C"):
        parse_config({"C": [float("inf")]})


def test_sigma_b_zero_allowed() -> None:
    assert parse_config({"sigma_b": [0]}).sigma_b == [0.0]


def test_rnnp_orders() -> None:
    config = parse_config({"rnnp_orders": [[2, 0, 1], [0, 1, 2], [2, 1, 0], [2, 0, 1]]})
    # Forward and reversed are always evaluated, so they and repeats are dropped.
    assert config.rnnp_orders == [[2, 0, 1]]
    assert config.rnnp_orders_for(3) == [(0, 1, 2), (2, 1, 0), (2, 0, 1)]
    with pytest.raises(ValueError, match="T = 4"):
        config.rnnp_orders_for(4)
    assert EvaluationConfig().rnnp_orders_for(1) == [(0,)]


def test_assignment_validated() -> None:
    config = EvaluationConfig()
    with pytest.raises(ValidationError):
        config.C = [-1.0]


def test_rf_max_features_mixed() -> None:
    assert parse_config({"rf_max_features": ["sqrt", 0.5, "log2", 1]}).rf_max_features == ["sqrt", 0.5, "log2", 1.0]


def test_parse_config_needs_mapping() -> None:
    with pytest.raises(ConfigError, match="JSON object"):
        parse_config([1, 2])  # type: ignore[arg-type]


# ------------------------------------------------------------------------- JSON files


def test_load_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"families": ["RNN", "MLP"], "C": [1, 10], "protocol": "stratified", "seed": 7}))
    config = load_config(path)
    assert config.families == ["RNN", "MLP"]
    assert config.C == [1.0, 10.0]
    assert (config.protocol, config.seed) == ("stratified", 7)
    path.write_text(json.dumps(CONTRACT))
    assert load_config(path) == EvaluationConfig()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('{"families": ["RNN"],}', "not valid JSON (line 1"),
        ("", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"C": [NaN]}', "NaN is not allowed"),
        ('{"seed": 1, "seed": 2}', "duplicate keys in config: seed"),
        ('{"layerz": [1]}', "unknown field 'layerz'"),
        ('{"sigma_u": [-1]}', "sigma_u[0]"),
    ],
)
def test_load_config_errors(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "bad.json" in str(info.value)
    assert fragment in str(info.value)


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing.json: cannot read config"):
        load_config(tmp_path / "missing.json")


def test_config_error_is_value_error() -> None:
    assert issubclass(ConfigError, ValueError)


def test_used_settings_drop_the_families_that_do_not_run():
    from rntk_core.evaluation.config import used_settings

    config = parse_config({"families": ["RNN", "RBF"], "rbf_gamma": [0.5]})
    kept = used_settings(config)
    assert {"sigma_u", "C", "kinds", "rbf_gamma", "normalize", "seed"} <= set(kept)
    assert not {"rnnp_orders", "poly_degree", "mlp_layers", "mlp_C", "rf_n_estimators"} & set(kept)
    assert parse_config(kept) == config  # the same evaluation
    only_rf = used_settings(parse_config({"families": ["RF"]}))
    assert not {"sigma_u", "kinds", "C", "rbf_gamma"} & set(only_rf) and "rf_max_features" in only_rf

"""/openapi.json documents the job request's config fields and every error response."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app.main import create_app
from rntk_core.evaluation.config import EvaluationConfig
from worker.settings import Settings


@pytest.fixture(scope="module")
def spec(tmp_path_factory) -> dict:
    app = create_app(Settings(data_dir=str(tmp_path_factory.mktemp("data"))), sweep=False)
    with TestClient(app) as client:
        response = client.get("/openapi.json")
        assert response.status_code == 200
        for page, marker in (("/docs", "swagger-ui-bundle.js"), ("/redoc", "redoc.standalone.js")):
            html = client.get(page).text
            assert marker in html and "cdn." not in html and "https://" not in html  # local assets
        script = client.get("/static-docs/redoc.standalone.js")
        assert script.status_code == 200 and b"cdn.redoc.ly" not in script.content
        assert client.get("/static-docs/swagger-ui-bundle.js").status_code == 200
        return response.json()


def _resolve(spec: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def test_job_request_documents_every_config_field(spec):
    body = spec["paths"]["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    request = _resolve(spec, body)
    config = _resolve(spec, request["properties"]["config"])
    assert set(config["properties"]) == set(EvaluationConfig.model_fields)
    for name, field in config["properties"].items():
        assert field.get("description"), f"config.{name} has no description"
    assert config["properties"]["normalize"]["enum"] == ["max_row_norm", "standardize", "none"]


@pytest.mark.parametrize("path, method, codes", [
    ("/jobs", "post", {"202", "401", "404", "408", "413", "422", "429", "503"}),  # multipart uploads too
    ("/datasets", "post", {"201", "401", "408", "413", "422", "503"}),
    ("/jobs/{job_id}", "get", {"200", "401", "404"}),
    ("/jobs/{job_id}/cancel", "post", {"202", "401", "404", "409"}),
    ("/jobs/{job_id}/artifacts/{name}", "get", {"200", "401", "404", "416"}),
    ("/jobs/estimate", "post", {"200", "400", "401", "404", "422"}),
])
def test_error_responses_are_documented(spec, path, method, codes):
    responses = spec["paths"][path][method]["responses"]
    assert codes <= set(responses), sorted(responses)
    for code in codes:
        if code.startswith(("4",)):
            schema = responses[code]["content"]["application/json"]["schema"]
            assert _resolve(spec, schema)["properties"]["detail"]["type"] == "string", (path, code)


def test_every_reference_resolves(spec):
    import json
    import re

    names = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(spec)))
    assert names <= set(spec["components"]["schemas"]), names - set(spec["components"]["schemas"])

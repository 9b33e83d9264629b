"""The running API matches docs/openapi.yaml: every response we provoke has a documented
status code, its documented required headers, and a body valid against its schema."""

from __future__ import annotations

import re
import uuid
from typing import Any

import pytest

import function_app  # noqa: F401  (importing the app registers every kind)
from operations.kinds import all_kinds
from tests.app.conftest import AppHost, json_of, run_peer
from tests.app.openapi_conformance import Conformance, every_ref, load_spec, resolve


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return load_spec()


def test_spec_is_openapi_31_and_every_ref_resolves(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    for ref in every_ref(spec):
        assert resolve(spec, {"$ref": ref}) is not None, ref


def test_every_kind_is_documented_with_its_exact_input_schema(spec: dict[str, Any]) -> None:
    documented = {
        path.rsplit("/", 1)[1]
        for path, item in spec["paths"].items()
        if "post" in item and re.fullmatch(r"/api/operations/[a-z]+", path)
    }
    assert documented == {kind.name for kind in all_kinds()}
    for kind in all_kinds():
        body = spec["paths"][f"/api/operations/{kind.name}"]["post"]["requestBody"]
        schema = dict(resolve(spec, body["content"]["application/json"]["schema"]))
        properties = dict(schema["properties"])
        assert "callbackUrl" in properties
        del properties["callbackUrl"]
        assert {**schema, "properties": properties} == kind.input_schema.to_json_schema()


def test_the_running_api_matches_the_spec(app_host: AppHost, spec: dict[str, Any]) -> None:
    api = Conformance(spec)
    http, base = app_host.http, app_host.api

    report = json_of(api.check(app_host.start("report", {"rows": 300, "partitions": 3})))
    app_host.wait_for(report["id"])
    api.check(http.get(report["operationUri"]))
    api.check(http.get(report["operationUri"], params={"redirect": "false"}))
    api.check(http.get(report["statusUri"]))
    result = api.check(http.get(report["resultUri"]))
    api.check(http.get(report["resultUri"], headers={"Accept": "text/csv"}))
    api.check(http.get(report["resultUri"], headers={"If-None-Match": result.headers["ETag"]}))
    api.check(http.get(report["resultUri"], headers={"Accept": "image/png"}))
    api.check(http.delete(report["operationUri"]))

    approval = json_of(
        api.check(app_host.start("approval", {"subject": "s", "timeoutSeconds": 60}))
    )
    app_host.wait_for(approval["id"], {"Running"})
    api.check(http.get(approval["operationUri"]))
    api.check(http.get(approval["statusUri"]))
    api.check(http.get(approval["resultUri"]))
    api.check(http.post(f"{approval['operationUri']}/approve", json={"approved": 1}))
    api.check(http.post(f"{approval['operationUri']}/approve", json={"approved": True, "by": "a"}))
    app_host.wait_for(approval["id"])
    api.check(http.get(approval["resultUri"]))
    api.check(http.post(f"{approval['operationUri']}/approve", json={"approved": True, "by": "a"}))

    canceled = json_of(
        api.check(app_host.start("approval", {"subject": "c", "timeoutSeconds": 60}))
    )
    app_host.wait_for(canceled["id"], {"Running"})
    api.check(http.delete(canceled["operationUri"]))
    app_host.wait_for(canceled["id"])
    api.check(http.get(canceled["operationUri"]))
    api.check(http.get(canceled["statusUri"]))

    with run_peer([200], b"payload") as source:
        ingest = json_of(api.check(app_host.start("ingest", {"urls": [source.url]})))
        app_host.wait_for(ingest["id"])
    api.check(http.get(ingest["resultUri"]))
    with run_peer([404]) as missing:
        failed = json_of(api.check(app_host.start("ingest", {"urls": [missing.url]})))
        app_host.wait_for(failed["id"])
    api.check(http.get(failed["operationUri"]))
    api.check(http.get(failed["statusUri"]))

    key = {"Idempotency-Key": str(uuid.uuid4())}
    api.check(app_host.start("report", {"rows": 5}, **key))
    api.check(app_host.start("report", {"rows": 5}, **key))
    api.check(app_host.start("report", {"rows": 6}, **key))
    api.check(app_host.start("report", {"rows": 0}))
    api.check(app_host.start("nonsense", {}))
    api.check(http.post(f"{base}/report", content=b"x", headers={"Content-Type": "text/plain"}))
    api.check(
        http.post(
            f"{base}/report",
            content=b'{"p": "' + b"x" * 70_000 + b'"}',
            headers={"Content-Type": "application/json"},
        )
    )
    unknown = f"{base}/{'0' * 32}"
    api.check(http.get(unknown))
    api.check(http.get(f"{unknown}/status"))
    api.check(http.get(f"{unknown}/result"))
    api.check(http.delete(unknown))
    api.check(http.get(base, params={"top": "2"}))
    api.check(http.get(base, params={"status": "Running", "kind": "approval"}))
    api.check(http.get(base, params={"top": "-1"}))

    # Everything documented for the item routes was provoked (410 is in the expiry test).
    for expected in [
        ("get", "/api/operations/{id}", 200),
        ("get", "/api/operations/{id}", 303),
        ("get", "/api/operations/{id}", 409),
        ("get", "/api/operations/{id}", 422),
        ("get", "/api/operations/{id}/status", 200),
        ("get", "/api/operations/{id}/status", 404),
        ("get", "/api/operations/{id}/result", 304),
        ("delete", "/api/operations/{id}", 409),
        ("post", "/api/operations/report", 422),
    ]:
        assert expected in api.checked

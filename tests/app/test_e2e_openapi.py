"""The running API matches docs/openapi.yaml: every response we provoke has a documented
status code, its documented required headers, and a body valid against its schema."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import pytest
import yaml

import function_app  # noqa: F401  (importing the app registers every kind)
from operations.kinds import all_kinds
from tests.app.conftest import AppHost, json_of, run_peer

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


def _resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def _every_ref(node: Any) -> list[str]:
    if isinstance(node, dict):
        refs = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return refs + [r for value in node.values() for r in _every_ref(value)]
    if isinstance(node, list):
        return [r for value in node for r in _every_ref(value)]
    return []


def test_spec_is_openapi_31_and_every_ref_resolves(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    for ref in _every_ref(spec):
        assert _resolve(spec, {"$ref": ref}) is not None, ref


def test_every_kind_is_documented_with_its_exact_input_schema(spec: dict[str, Any]) -> None:
    documented = {
        path.rsplit("/", 1)[1]
        for path, item in spec["paths"].items()
        if "post" in item and re.fullmatch(r"/api/operations/[a-z]+", path)
    }
    assert documented == {kind.name for kind in all_kinds()}
    for kind in all_kinds():
        body = spec["paths"][f"/api/operations/{kind.name}"]["post"]["requestBody"]
        schema = dict(_resolve(spec, body["content"]["application/json"]["schema"]))
        properties = dict(schema["properties"])
        assert "callbackUrl" in properties
        del properties["callbackUrl"]
        assert {**schema, "properties": properties} == kind.input_schema.to_json_schema()


class Conformance:
    """Match a real response to the spec and check it."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.checked: set[tuple[str, str, int]] = set()

    def _operation(self, method: str, path: str) -> tuple[str, dict[str, Any]]:
        paths = self.spec["paths"]
        if path in paths and method in paths[path]:
            return path, paths[path][method]
        for template, item in paths.items():
            pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
            if "{" in template and re.match(pattern, path) and method in item:
                return template, item[method]
        raise AssertionError(f"{method.upper()} {path} is not in docs/openapi.yaml")

    def check(self, response: httpx.Response) -> httpx.Response:
        method = response.request.method.lower()
        path = urlsplit(str(response.request.url)).path
        template, operation = self._operation(method, path)
        code = str(response.status_code)
        documented = operation["responses"]
        assert code in documented, f"{method.upper()} {template} answered undocumented {code}"
        declared = _resolve(self.spec, documented[code])
        for name, header in (declared.get("headers") or {}).items():
            if header.get("required"):
                assert name in response.headers, f"{template} {code} lacks {name}"
        content = declared.get("content") or {}
        if content:
            media = response.headers["Content-Type"].split(";")[0].strip()
            assert media in content, f"{template} {code} answered {media}, not {list(content)}"
            schema = content[media].get("schema")
            if schema is not None and media.endswith("json"):
                root = {**schema, "components": self.spec["components"]}
                jsonschema.Draft202012Validator(root).validate(json_of(response))
        self.checked.add((method, template, response.status_code))
        return response


def test_the_running_api_matches_the_spec(app_host: AppHost, spec: dict[str, Any]) -> None:
    api = Conformance(spec)
    http, base = app_host.http, app_host.api

    report = json_of(api.check(app_host.start("report", {"rows": 300, "partitions": 3})))
    app_host.wait_for(report["id"])
    api.check(http.get(report["operationUri"]))
    api.check(http.get(report["operationUri"], params={"redirect": "false"}))
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

    with run_peer([200], b"payload") as source:
        ingest = json_of(api.check(app_host.start("ingest", {"urls": [source.url]})))
        app_host.wait_for(ingest["id"])
    api.check(http.get(ingest["resultUri"]))
    with run_peer([404]) as missing:
        failed = json_of(api.check(app_host.start("ingest", {"urls": [missing.url]})))
        app_host.wait_for(failed["id"])
    api.check(http.get(failed["operationUri"]))

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
    api.check(http.get(f"{unknown}/result"))
    api.check(http.delete(unknown))
    api.check(http.get(base, params={"top": "2"}))
    api.check(http.get(base, params={"status": "Running", "kind": "approval"}))
    api.check(http.get(base, params={"top": "-1"}))

    # Everything documented for the item routes was provoked (410 is in the expiry test).
    for expected in [
        ("get", "/api/operations/{id}", 200),
        ("get", "/api/operations/{id}", 303),
        ("get", "/api/operations/{id}/result", 304),
        ("delete", "/api/operations/{id}", 409),
        ("post", "/api/operations/report", 422),
    ]:
        assert expected in api.checked

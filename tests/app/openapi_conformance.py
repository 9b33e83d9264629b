"""Checking real responses against docs/openapi.yaml (shared by the e2e tests)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jsonschema
import yaml

from tests.app.conftest import json_of

__all__ = ["SPEC_PATH", "Conformance", "every_ref", "load_spec", "resolve"]

SPEC_PATH = Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml"


def load_spec() -> dict[str, Any]:
    """docs/openapi.yaml, parsed."""
    loaded: dict[str, Any] = yaml.safe_load(SPEC_PATH.read_text())
    return loaded


def resolve(spec: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node and len(node) == 1:
        target: Any = spec
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def every_ref(node: Any) -> list[str]:
    if isinstance(node, dict):
        refs = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return refs + [r for value in node.values() for r in every_ref(value)]
    if isinstance(node, list):
        return [r for value in node for r in every_ref(value)]
    return []


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

    def validate(self, schema: dict[str, Any], body: Any) -> None:
        """Validate a JSON body against a schema of the spec (refs resolved)."""
        root = {**schema, "components": self.spec["components"]}
        jsonschema.Draft202012Validator(root).validate(body)

    def check(self, response: httpx.Response) -> httpx.Response:
        method = response.request.method.lower()
        path = urlsplit(str(response.request.url)).path
        template, operation = self._operation(method, path)
        code = str(response.status_code)
        documented = operation["responses"]
        assert code in documented, f"{method.upper()} {template} answered undocumented {code}"
        declared = resolve(self.spec, documented[code])
        for name, header in (declared.get("headers") or {}).items():
            if header.get("required"):
                assert name in response.headers, f"{template} {code} lacks {name}"
        content = declared.get("content") or {}
        if content:
            media = response.headers["Content-Type"].split(";")[0].strip()
            assert media in content, f"{template} {code} answered {media}, not {list(content)}"
            schema = content[media].get("schema")
            if schema is not None and media.endswith("json"):
                self.validate(schema, json_of(response))
        self.checked.add((method, template, response.status_code))
        return response

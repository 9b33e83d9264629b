"""Declarative input schemas for operation kinds, checked without third-party packages.

A kind declares its input as an `InputSchema` of typed fields; `validate` returns the
normalised input (defaults filled in) or raises `InputValidationError` naming EVERY bad
field at once, so a client fixes its request in one round trip. `to_json_schema` renders
the same declaration for docs/openapi.yaml, so the two cannot drift apart silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from operations.errors import FieldProblem, InputValidationError
from operations.outbound import ALLOW_SETTING, OutboundPolicy, parse_outbound_url

__all__ = [
    "BooleanField",
    "FieldSpec",
    "InputSchema",
    "IntegerField",
    "StringField",
    "UrlField",
    "UrlListField",
    "check_url",
]


class FieldSpec(Protocol):
    """What every field declaration offers."""

    @property
    def name(self) -> str: ...

    @property
    def required(self) -> bool: ...

    def default_value(self) -> Any: ...

    def check(self, value: Any, problems: list[FieldProblem]) -> Any: ...

    def json_schema(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class IntegerField:
    """A JSON integer (not a boolean, not 1.5) within [minimum, maximum]."""

    name: str
    minimum: int | None = None
    maximum: int | None = None
    default: int | None = None
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None

    def default_value(self) -> Any:
        return self.default

    def check(self, value: Any, problems: list[FieldProblem]) -> Any:
        # bool is an int subclass in Python, but `true` is not a number in JSON.
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(FieldProblem(self.name, f"must be an integer{self._range()}"))
            return None
        if (self.minimum is not None and value < self.minimum) or (
            self.maximum is not None and value > self.maximum
        ):
            problems.append(FieldProblem(self.name, f"must be an integer{self._range()}"))
            return None
        return value

    def _range(self) -> str:
        if self.minimum is not None and self.maximum is not None:
            return f" from {self.minimum} to {self.maximum}"
        if self.minimum is not None:
            return f" >= {self.minimum}"
        if self.maximum is not None:
            return f" <= {self.maximum}"
        return ""

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "integer"}
        if self.minimum is not None:
            schema["minimum"] = self.minimum
        if self.maximum is not None:
            schema["maximum"] = self.maximum
        if self.default is not None:
            schema["default"] = self.default
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True, slots=True)
class StringField:
    """A JSON string of min_length..max_length characters (after trimming blanks)."""

    name: str
    min_length: int = 1
    max_length: int = 200
    default: str | None = None
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None

    def default_value(self) -> Any:
        return self.default

    def check(self, value: Any, problems: list[FieldProblem]) -> Any:
        if not isinstance(value, str) or not (
            self.min_length <= len(value.strip()) <= self.max_length
        ):
            problems.append(
                FieldProblem(
                    self.name,
                    f"must be a string of {self.min_length} to {self.max_length} characters",
                )
            )
            return None
        return value.strip()

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "string",
            "minLength": self.min_length,
            "maxLength": self.max_length,
        }
        if self.min_length > 0:
            # check() trims blanks first, so all-blank text is too short.
            schema["pattern"] = r"\S"
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True, slots=True)
class BooleanField:
    """A JSON boolean."""

    name: str
    default: bool | None = None
    description: str = ""

    @property
    def required(self) -> bool:
        return self.default is None

    def default_value(self) -> Any:
        return self.default

    def check(self, value: Any, problems: list[FieldProblem]) -> Any:
        if not isinstance(value, bool):
            problems.append(FieldProblem(self.name, "must be true or false"))
            return None
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "boolean"}
        if self.description:
            schema["description"] = self.description
        return schema


def check_url(value: Any, policy: OutboundPolicy | None = None) -> str | None:
    """Why `value` is not a URL the app may fetch or POST to, or None when it is one.

    Checks the syntax strictly (a malformed URL is a 400, never a crash later) and refuses
    hosts that spell a forbidden address literally (`127.0.0.1`, `[::1]`, `2130706433`);
    names are judged when the request is made, as their addresses can change."""
    if not isinstance(value, str) or len(value) > 2048:
        return "must be an absolute http or https URL (at most 2048 characters)"
    try:
        target = parse_outbound_url(value)
    except ValueError as error:
        return str(error)
    policy = policy if policy is not None else OutboundPolicy.from_settings()
    why = policy.literal_refusal(target.host)
    if why:
        return (
            f"names {target.host}, {why}, which this app does not connect to; use a public "
            f"host, or for local development allow it with the {ALLOW_SETTING} app setting "
            "(e.g. 127.0.0.0/8,localhost)"
        )
    return None


@dataclass(frozen=True, slots=True)
class UrlField:
    """An absolute http(s) URL the app may reach (see `check_url`)."""

    name: str
    optional: bool = False
    description: str = ""

    @property
    def required(self) -> bool:
        return not self.optional

    def default_value(self) -> Any:
        return None

    def check(self, value: Any, problems: list[FieldProblem]) -> Any:
        reason = check_url(value)
        if reason:
            problems.append(FieldProblem(self.name, reason))
            return None
        return value

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "format": "uri", "maxLength": 2048}
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True, slots=True)
class UrlListField:
    """A list of min_items..max_items URLs the app may reach (see `check_url`)."""

    name: str
    min_items: int = 1
    max_items: int = 32
    description: str = ""

    @property
    def required(self) -> bool:
        return True

    def default_value(self) -> Any:
        return None

    def check(self, value: Any, problems: list[FieldProblem]) -> Any:
        if not isinstance(value, list) or not (self.min_items <= len(value) <= self.max_items):
            problems.append(
                FieldProblem(
                    self.name,
                    f"must be a list of {self.min_items} to {self.max_items} http(s) URLs",
                )
            )
            return None
        before = len(problems)
        policy = OutboundPolicy.from_settings()
        for index, item in enumerate(value):
            reason = check_url(item, policy)
            if reason:
                problems.append(FieldProblem(f"{self.name}/{index}", reason))
        return list(value) if len(problems) == before else None

    def json_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "array",
            "minItems": self.min_items,
            "maxItems": self.max_items,
            "items": {"type": "string", "format": "uri", "maxLength": 2048},
        }
        if self.description:
            schema["description"] = self.description
        return schema


@dataclass(frozen=True, slots=True)
class InputSchema:
    """The input of one operation kind: a JSON object with exactly these fields."""

    fields: tuple[FieldSpec, ...]

    def validate(self, body: Any) -> dict[str, Any]:
        """The normalised input, or InputValidationError naming each bad field."""
        if not isinstance(body, Mapping):
            raise InputValidationError([FieldProblem("", "the request body must be a JSON object")])
        problems: list[FieldProblem] = []
        known = {spec.name for spec in self.fields}
        for name in body:
            if name not in known:
                expected = ", ".join(sorted(known)) or "no fields"
                problems.append(FieldProblem(str(name), f"unknown field; expected {expected}"))
        normalised: dict[str, Any] = {}
        for spec in self.fields:
            if spec.name not in body or body[spec.name] is None:
                if spec.required:
                    problems.append(FieldProblem(spec.name, "is required"))
                elif spec.default_value() is not None:
                    normalised[spec.name] = spec.default_value()
                continue
            normalised[spec.name] = spec.check(body[spec.name], problems)
        if problems:
            raise InputValidationError(problems)
        return normalised

    def to_json_schema(self) -> dict[str, Any]:
        """The same declaration as a JSON Schema object (for OpenAPI)."""
        properties = {spec.name: spec.json_schema() for spec in self.fields}
        for spec in self.fields:
            if not spec.required:
                # validate() reads null in an optional field as absent (its default).
                properties[spec.name]["type"] = [properties[spec.name]["type"], "null"]
        return {
            "type": "object",
            "additionalProperties": False,
            "required": [spec.name for spec in self.fields if spec.required],
            "properties": properties,
        }

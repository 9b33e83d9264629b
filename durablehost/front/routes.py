"""HTTP trigger route templates, matched the way the Functions host (ASP.NET routing) does.

A template is a `/`-separated list of segments. A segment is a literal (`users`), a
parameter (`{id}`), or a mix (`{name}.{ext}`). Parameters may be optional (`{x?}`), have a
default (`{x=5}`), be a catch-all (`{*path}`, `{**path}`) and carry constraints
(`{id:int}`, `{n:min(3)}`, `{v:regex(^a+$)}`, chained as `{id:int:min(1)}`).

Matching is case-insensitive for literals, ignores a trailing slash, and when several
templates match one path the most specific one wins (literal before constrained parameter
before plain parameter before catch-all, segment by segment), as in ASP.NET Core.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation

__all__ = ["RouteTemplate", "RouteTemplateError", "parse_route"]


class RouteTemplateError(ValueError):
    """A route template cannot be parsed (reported at start, naming the function)."""


Constraint = Callable[[str], bool]

# ASP.NET route constraints are culture-invariant; these follow its parsers closely enough
# for the values people put in URLs.
_INT_RE = re.compile(r"^[+-]?\d+$")
_FLOAT_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_ALPHA_RE = re.compile(r"^[a-zA-Z]+$")
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)


def _is_int_in(value: str, bounds: tuple[int, int]) -> bool:
    return bool(_INT_RE.match(value)) and bounds[0] <= int(value) <= bounds[1]


def _is_float(value: str) -> bool:
    return bool(_FLOAT_RE.match(value))


def _is_decimal(value: str) -> bool:
    if not _FLOAT_RE.match(value) or "e" in value.lower():
        return False
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True


def _is_guid(value: str) -> bool:
    try:
        uuid.UUID(value.strip("{}()"))
    except ValueError:
        return False
    return True


def _is_datetime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _is_file(value: str) -> bool:
    # ASP.NET 'file': the last path segment contains a dot that is not its last character.
    last = value.rsplit("/", 1)[-1]
    dot = last.rfind(".")
    return 0 < dot < len(last) - 1 or (dot == 0 and len(last) > 1)


_SIMPLE_CONSTRAINTS: dict[str, Constraint] = {
    "int": lambda v: _is_int_in(v, _INT32),
    "long": lambda v: _is_int_in(v, _INT64),
    "bool": lambda v: v.lower() in ("true", "false"),
    "float": _is_float,
    "double": _is_float,
    "decimal": _is_decimal,
    "guid": _is_guid,
    "datetime": _is_datetime,
    "alpha": lambda v: bool(_ALPHA_RE.match(v)),
    "required": lambda v: v != "",
    "file": _is_file,
    "nonfile": lambda v: not _is_file(v),
}


def _int_args(name: str, args: str, count: int) -> list[int]:
    parts = [part.strip() for part in args.split(",")]
    if len(parts) != count or not all(_INT_RE.match(part) for part in parts):
        raise RouteTemplateError(f"constraint '{name}' takes {count} integer argument(s)")
    return [int(part) for part in parts]


def _argument_constraint(name: str, args: str) -> Constraint:
    if name == "regex":
        try:
            pattern = re.compile(args, re.IGNORECASE)
        except re.error as exc:
            raise RouteTemplateError(f"bad regex in route constraint: {exc}") from None
        return lambda v: pattern.search(v) is not None
    if name in ("min", "max"):
        (limit,) = _int_args(name, args, 1)
        if name == "min":
            return lambda v: _is_int_in(v, _INT64) and int(v) >= limit
        return lambda v: _is_int_in(v, _INT64) and int(v) <= limit
    if name == "range":
        low, high = _int_args(name, args, 2)
        return lambda v: _is_int_in(v, _INT64) and low <= int(v) <= high
    if name in ("minlength", "maxlength"):
        (size,) = _int_args(name, args, 1)
        if name == "minlength":
            return lambda v: len(v) >= size
        return lambda v: len(v) <= size
    if name == "length":
        sizes = _int_args(name, args, args.count(",") + 1)
        if len(sizes) == 1:
            return lambda v: len(v) == sizes[0]
        if len(sizes) == 2:
            return lambda v: sizes[0] <= len(v) <= sizes[1]
        raise RouteTemplateError("constraint 'length' takes 1 or 2 arguments")
    raise RouteTemplateError(f"unknown route constraint '{name}'")


def _split_constraints(text: str) -> list[str]:
    """Split `int:min(1):regex(a:b)` on colons that are not inside parentheses."""
    parts: list[str] = []
    depth = 0
    current: list[str] = []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth = max(0, depth - 1)
        if char == ":" and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def _parse_constraint(text: str) -> Constraint:
    match = re.fullmatch(r"(\w+)(?:\((.*)\))?", text, re.DOTALL)
    if match is None:
        raise RouteTemplateError(f"bad route constraint '{text}'")
    name, args = match.group(1).lower(), match.group(2)
    if args is None:
        if name not in _SIMPLE_CONSTRAINTS:
            raise RouteTemplateError(f"unknown route constraint '{name}'")
        return _SIMPLE_CONSTRAINTS[name]
    return _argument_constraint(name, args)


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    optional: bool = False
    default: str | None = None
    catch_all: bool = False
    constraints: tuple[Constraint, ...] = ()


_PARAM_RE = re.compile(r"\{([^{}]*)\}")


def _last_top_level(text: str, char: str) -> int:
    """Index of the last `char` not inside parentheses, or -1."""
    depth, found = 0, -1
    for index, current in enumerate(text):
        if current == "(":
            depth += 1
        elif current == ")":
            depth = max(0, depth - 1)
        elif current == char and depth == 0:
            found = index
    return found


def _parse_parameter(body: str, template: str) -> _Parameter:
    body = body.strip()
    catch_all = body.startswith("*")
    body = body.lstrip("*")
    default: str | None = None
    # `{x=5}` or `{x:int=5}`: the default follows the last '=' outside parentheses, so
    # `{v:regex(a=b)}` keeps its '=' in the constraint.
    equals = _last_top_level(body, "=")
    if equals >= 0:
        body, default = body[:equals], body[equals + 1 :]
    name_part, _, constraint_part = body.partition(":")
    optional = name_part.endswith("?") or (constraint_part.endswith("?") and default is None)
    name_part = name_part.rstrip("?")
    constraint_part = constraint_part.removesuffix("?") if optional else constraint_part
    if not re.fullmatch(r"[A-Za-z_]\w*", name_part):
        raise RouteTemplateError(f"bad parameter name '{name_part}' in route '{template}'")
    constraints = tuple(
        _parse_constraint(text) for text in _split_constraints(constraint_part) if text
    )
    return _Parameter(
        name=name_part,
        optional=optional or catch_all,
        default=default,
        catch_all=catch_all,
        constraints=constraints,
    )


@dataclass(frozen=True, slots=True)
class RouteTemplate:
    """A compiled route template; `match(path)` gives the route parameters or None."""

    template: str
    regex: re.Pattern[str]
    parameters: tuple[_Parameter, ...]
    precedence: tuple[int, ...]

    def match(self, path: str) -> dict[str, str] | None:
        """Route parameters for `path` (already stripped of the route prefix), or None."""
        found = self.regex.match(path)
        if found is None:
            return None
        values: dict[str, str] = {}
        for index, parameter in enumerate(self.parameters):
            value = found.group(f"p{index}")
            if value is None or value == "":
                if parameter.default is not None:
                    values[parameter.name] = parameter.default
                elif not parameter.optional:
                    return None
                continue
            if not all(check(value) for check in parameter.constraints):
                return None
            values[parameter.name] = value
        return values

    def expand(self, values: Mapping[str, str] | None = None) -> str:
        """The template with the given parameter values filled in (for printing URLs)."""
        if not values:
            return self.template
        return _PARAM_RE.sub(
            lambda m: values.get(_parse_parameter(m.group(1), self.template).name, m.group(0)),
            self.template,
        )


def parse_route(template: str) -> RouteTemplate:
    """Compile a route template; raises RouteTemplateError when it is malformed."""
    text = template.strip().strip("/")
    if "//" in text:
        raise RouteTemplateError(f"route '{template}' has an empty segment")
    parameters: list[_Parameter] = []
    segments: list[tuple[str, bool, int]] = []  # (regex, omittable, precedence)
    raw_segments = text.split("/") if text else []
    for position, raw in enumerate(raw_segments):
        pieces: list[str] = []
        segment_params: list[_Parameter] = []
        cursor = 0
        for found in _PARAM_RE.finditer(raw):
            literal = raw[cursor : found.start()]
            if "{" in literal or "}" in literal:
                raise RouteTemplateError(f"unbalanced braces in route '{template}'")
            pieces.append(re.escape(literal))
            parameter = _parse_parameter(found.group(1), template)
            if any(p.name.lower() == parameter.name.lower() for p in parameters):
                raise RouteTemplateError(
                    f"parameter '{parameter.name}' appears twice in route '{template}'"
                )
            if parameter.catch_all and position != len(raw_segments) - 1:
                raise RouteTemplateError(
                    f"catch-all '{{*{parameter.name}}}' must be the last segment of '{template}'"
                )
            group = f"p{len(parameters)}"
            if parameter.catch_all:
                pieces.append(f"(?P<{group}>.*)")
            else:
                # Greedy: in `{name}.{ext}` the last dot splits, as ASP.NET matches
                # multi-part segments from the right.
                pieces.append(f"(?P<{group}>[^/]+)")
            parameters.append(parameter)
            segment_params.append(parameter)
            cursor = found.end()
        tail = raw[cursor:]
        if "{" in tail or "}" in tail:
            raise RouteTemplateError(f"unbalanced braces in route '{template}'")
        pieces.append(re.escape(tail))
        whole_param = len(segment_params) == 1 and _PARAM_RE.fullmatch(raw) is not None
        if len(segment_params) > 1 and any(p.optional for p in segment_params):
            # ASP.NET only allows an optional parameter as the last part of a complex
            # segment; we keep it simple and refuse optional parts in complex segments.
            raise RouteTemplateError(
                f"optional parameters in a multi-part segment are not supported: '{raw}'"
            )
        omittable = whole_param and (
            segment_params[0].optional or segment_params[0].default is not None
        )
        if not segment_params:
            precedence = 1
        elif not whole_param:
            precedence = 2
        elif segment_params[0].catch_all:
            precedence = 5
        elif segment_params[0].constraints:
            precedence = 3
        else:
            precedence = 4
        segments.append(("".join(pieces), omittable, precedence))
    for index, (_, omittable, _) in enumerate(segments):
        if omittable and not all(later[1] for later in segments[index + 1 :]):
            raise RouteTemplateError(
                f"an optional parameter must be at the end of route '{template}'"
            )
    regex = _build_regex(segments)
    return RouteTemplate(
        template=text,
        regex=re.compile(regex, re.IGNORECASE | re.DOTALL),
        parameters=tuple(parameters),
        precedence=tuple(segment[2] for segment in segments),
    )


def _build_regex(segments: list[tuple[str, bool, int]]) -> str:
    # Trailing omittable segments nest: `a/{b?}/{c?}` -> `a(?:/b(?:/c)?)?`.
    required = [pattern for pattern, omittable, _ in segments if not omittable]
    optional = [pattern for pattern, omittable, _ in segments if omittable]
    tail = ""
    for pattern in reversed(optional):
        tail = f"(?:/{pattern}{tail})?"
    if not required and tail:
        # Nothing precedes the first omittable segment, so it has no leading slash; the
        # outermost group starts the string.
        tail = "(?:" + tail[len("(?:/") :]
    return f"^{'/'.join(required)}{tail}/?$"

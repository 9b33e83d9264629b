"""Route templates: ASP.NET routing semantics as the Functions host applies them."""

from __future__ import annotations

import pytest

from durablehost.front.routes import RouteTemplateError, parse_route


@pytest.mark.parametrize(
    ("template", "path", "expected"),
    [
        ("hello", "hello", {}),
        ("hello", "HELLO", {}),
        ("hello", "hello/", {}),
        ("hello", "hello/x", None),
        ("hello/{name?}", "hello", {}),
        ("hello/{name?}", "hello/bob", {"name": "bob"}),
        ("hello/{name?}", "hellox", None),
        ("{a}/{b=7}", "x", {"a": "x", "b": "7"}),
        ("{a}/{b=7}", "x/9", {"a": "x", "b": "9"}),
        ("{a?}/{b?}", "", {}),
        ("{a?}/{b?}", "1/2", {"a": "1", "b": "2"}),
        ("files/{*path}", "files", {}),
        ("files/{*path}", "files/a/b/c.txt", {"path": "a/b/c.txt"}),
        ("files/{**path}", "files/a/b", {"path": "a/b"}),
        ("{name}.{ext}", "archive.tar.gz", {"name": "archive.tar", "ext": "gz"}),
        ("orchestrators/{functionName}/{instanceId?}", "orchestrators/f", {"functionName": "f"}),
    ],
)
def test_match(template: str, path: str, expected: dict[str, str] | None) -> None:
    assert parse_route(template).match(path) == expected


@pytest.mark.parametrize(
    ("constraint", "good", "bad"),
    [
        ("int", ["5", "-3", "2147483647"], ["x", "1.5", "2147483648", ""]),
        ("long", ["9223372036854775807"], ["9223372036854775808", "a"]),
        ("bool", ["true", "False"], ["yes", "1"]),
        ("double", ["1.5", "-2", "1e3"], ["abc", "1.2.3"]),
        ("decimal", ["1.25"], ["1e3", "x"]),
        (
            "guid",
            ["3f2504e0-4f89-11d3-9a0c-0305e82c3301", "{3f2504e0-4f89-11d3-9a0c-0305e82c3301}"],
            ["nope", "1234"],
        ),
        ("alpha", ["abcXYZ"], ["abc1", "a-b"]),
        ("datetime", ["2024-01-02", "2024-01-02T03:04:05"], ["yesterday"]),
        ("min(3)", ["3", "10"], ["2", "x"]),
        ("max(3)", ["3", "-1"], ["4"]),
        ("range(1,5)", ["1", "5"], ["0", "6"]),
        ("minlength(2)", ["ab"], ["a"]),
        ("maxlength(2)", ["ab"], ["abc"]),
        ("length(2)", ["ab"], ["a", "abc"]),
        ("length(1,2)", ["a", "ab"], ["abc"]),
        ("regex(^a+b$)", ["aab", "AB"], ["ba"]),
        ("regex(^a=b$)", ["a=b"], ["ab"]),
        ("int:min(10)", ["10"], ["9", "ten"]),
    ],
)
def test_constraints(constraint: str, good: list[str], bad: list[str]) -> None:
    template = parse_route(f"v/{{value:{constraint}}}")
    for value in good:
        assert template.match(f"v/{value}") == {"value": value}, value
    for value in bad:
        assert template.match(f"v/{value}") is None, value


def test_default_with_constraint() -> None:
    template = parse_route("v/{id:int=5}")
    assert template.match("v") == {"id": "5"}
    assert template.match("v/7") == {"id": "7"}
    assert template.match("v/x") is None


def test_optional_constrained_parameter() -> None:
    template = parse_route("v/{id:int?}")
    assert template.match("v") == {}
    assert template.match("v/4") == {"id": "4"}
    assert template.match("v/x") is None


def test_precedence_orders_literal_constrained_plain_catch_all() -> None:
    literal = parse_route("items/special")
    constrained = parse_route("items/{id:int}")
    plain = parse_route("items/{name}")
    catch_all = parse_route("items/{*rest}")
    ordered = sorted([catch_all, plain, constrained, literal], key=lambda t: t.precedence)
    assert ordered == [literal, constrained, plain, catch_all]


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("a/{x?}/b", "optional parameter must be at the end"),
        ("{*rest}/b", "catch-all"),
        ("a/{id}/{id}", "appears twice"),
        ("a/{id:nosuch}", "unknown route constraint"),
        ("a/{id:min(x)}", "integer argument"),
        ("a/{id:regex(()}", "bad regex"),
        ("a/{bad name}", "bad parameter name"),
        ("a/{x", "unbalanced braces"),
        ("a//b", "empty segment"),
    ],
)
def test_bad_templates_say_what_is_wrong(template: str, message: str) -> None:
    with pytest.raises(RouteTemplateError, match=message):
        parse_route(template)


def test_expand_fills_parameters() -> None:
    assert parse_route("a/{id:int}/{name?}").expand({"id": "3"}) == "a/3/{name?}"

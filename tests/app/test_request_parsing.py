"""The operations API's request readers are total: whatever a client sends, each returns a
value or raises BadRequest (answered as problem+json), never another exception.

Examples pin each known hostile class (Python's 4,300-digit int limit, nesting past the
recursion limit, NaN, lone surrogates, Unicode digits, undecodable header bytes); the
property tests then feed the same readers arbitrary text, bytes and JSON.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.configuration import storage_directory

from operations.json_input import MAX_JSON_DEPTH, JsonRefused, parse_json_text
from operations.monitor import OperationState
from operations.requests import (
    MAX_TOP,
    BadRequest,
    choose_media_type,
    decode_continuation,
    encode_continuation,
    etag_matches,
    is_json_media_type,
    parse_json_body,
    parse_list_query,
    parse_query_int,
    read_header,
)
from tests.app.hypothesis_setup import BOUNDED, HYPOTHESIS_HOME

LIMIT = 65536
REPO = Path(__file__).resolve().parents[2]


def test_hypothesis_keeps_its_files_out_of_the_work_tree() -> None:
    assert not storage_directory("examples").path.is_relative_to(REPO)
    assert not HYPOTHESIS_HOME.is_relative_to(REPO)


def refusal(body: bytes, content_type: str | None = "application/json") -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_json_body(body, content_type, LIMIT)
    return caught.value


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


# ------------------------------------------------------------------- JSON bodies


@pytest.mark.parametrize(
    ("body", "says"),
    [
        (b'{"rows": ' + b"9" * 5000 + b"}", "numbers may have at most 100"),
        (b'{"rows": -' + b"1" * 101 + b"}", "numbers may have at most 100"),
        (b'{"rows": 1.' + b"5" * 200 + b"}", "numbers may have at most 100"),
        (b'{"rows": 1e999}', "too large"),
        (b'{"rows": -1e999}', "too large"),
        (b'{"rows": NaN}', "NaN is not a JSON value"),
        (b'{"rows": -Infinity}', "-Infinity is not a JSON value"),
        (nested(MAX_JSON_DEPTH + 1), f"deeper than {MAX_JSON_DEPTH}"),
        (nested(sys.getrecursionlimit() + 10), f"deeper than {MAX_JSON_DEPTH}"),
        (nested(30000), f"deeper than {MAX_JSON_DEPTH}"),
        (b'{"a":' * 70 + b"1" + b"}" * 70, f"deeper than {MAX_JSON_DEPTH}"),
        (b'{"subject": "\\ud800"}', "unpaired UTF-16 surrogate"),
        (b'{"\\udfff": 1}', "unpaired UTF-16 surrogate"),
        (b'{"a": "\xff"}', "not UTF-8"),
        ('{"a": 1}'.encode("utf-16"), "not UTF-8"),
        (b'{"a": 1', "Expecting"),
    ],
)
def test_hostile_json_bodies_are_400_with_a_reason(body: bytes, says: str) -> None:
    error = refusal(body)
    assert (error.status, error.slug) == (400, "invalid-json")
    assert says in error.detail
    assert error.detail.startswith("The body is not valid JSON: ")


def test_json_within_the_bounds_reads_as_before() -> None:
    assert parse_json_body(nested(MAX_JSON_DEPTH), "application/json", LIMIT) == json.loads(
        nested(MAX_JSON_DEPTH)
    )
    big = int("9" * 100)
    assert parse_json_body(f'{{"n": {big}}}'.encode(), "application/json", LIMIT) == {"n": big}
    assert parse_json_body(b'{"x": 1.5e300}', "application/json", LIMIT) == {"x": 1.5e300}
    assert parse_json_body(b'\xef\xbb\xbf{"a": 1}', "application/json", LIMIT) == {"a": 1}
    assert parse_json_body(b'{"s": "\\ud83d\\ude00"}', "application/json", LIMIT) == {"s": "😀"}
    assert parse_json_body(b"  ", "application/json", LIMIT) == {}


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text()
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=max_leaves,
    )


@BOUNDED
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_parse_or_are_a_bad_request(body: bytes) -> None:
    try:
        parse_json_body(body, "application/json", LIMIT)
    except BadRequest as error:
        assert error.status in (400, 413, 415)
        assert error.detail


@BOUNDED
@given(json_values())
def test_json_a_client_can_send_reads_back_the_same(value: Any) -> None:
    body = json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    try:
        parsed = parse_json_body(body, "application/json", LIMIT)
    except BadRequest as error:
        # Only for text that is not Unicode (hypothesis can draw lone surrogates) or a
        # number longer than the bound.
        assert (
            "surrogate" in error.detail
            or "not UTF-8" in error.detail
            or ("numbers may have at most" in error.detail)
        )
        return
    assert parsed == value


@BOUNDED
@given(st.text(alphabet='[]{}":,0123456789 ', max_size=400))
def test_bracket_soup_never_escapes_as_another_error(text: str) -> None:
    with contextlib.suppress(JsonRefused):
        parse_json_text(text)


# ------------------------------------------------------------------- continuation tokens


def token_of(payload: bytes) -> str:
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


@pytest.mark.parametrize(
    "token",
    [
        token_of(nested(20000)),  # RecursionError in json.loads before
        token_of(b'{"v":1,"h":"a\\nb"}'),  # a newline would go into the hub's header
        token_of(b'{"v":1,"h":"\\u00e9"}'),
        token_of(b'{"v":1,"h":"\\ud800"}'),
        token_of(b'{"v":1,"h":' + b"9" * 5000 + b"}"),
        token_of(b'[{"v":1}]'),
        token_of(b'{"v":1}'),
        token_of(b'{"v":true,"h":"x"}'),
        token_of(b"\xff\xfe"),
        "a" * 5000,
        "eyJ2IjoxLCJoIjoieCJ9\n",
        "٣٣٣٣",
        "=",
        "a",
    ],
)
def test_forged_continuation_tokens_are_400(token: str) -> None:
    with pytest.raises(BadRequest) as caught:
        decode_continuation(token)
    assert caught.value.status == 400
    assert "take it from nextLink" in caught.value.detail


@BOUNDED
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=200))
def test_every_header_safe_hub_token_round_trips(hub_token: str) -> None:
    assert decode_continuation(encode_continuation(hub_token)) == hub_token


@BOUNDED
@given(st.text(max_size=200) | st.binary(max_size=150).map(token_of))
def test_any_token_decodes_or_is_a_bad_request(token: str) -> None:
    try:
        hub_token = decode_continuation(token)
    except BadRequest:
        return
    assert hub_token.isascii() and hub_token.isprintable()


# ------------------------------------------------------------------- the list query


@pytest.mark.parametrize(
    "raw", ["²", "٣", "\uff11", "1_0", "+5", "-1", "0", "1001", "9" * 5000, "5.0", "", " 5"]
)
def test_top_takes_ascii_digits_from_1_to_max_top_only(raw: str) -> None:
    with pytest.raises(BadRequest) as caught:
        parse_list_query({"top": raw})
    error = caught.value
    assert error.status == 400
    assert [problem["field"] for problem in error.extra["errors"]] == ["top"]
    assert f"from 1 to {MAX_TOP} in ASCII digits" in error.detail


def test_top_within_bounds_reads_as_before() -> None:
    assert parse_list_query({"top": "7"}).top == 7
    assert parse_list_query({"top": "0010"}).top == 10
    assert parse_list_query({"top": str(MAX_TOP)}).top == MAX_TOP
    assert parse_query_int("65535", "port", 0, 65535) == 65535


def test_every_bad_list_parameter_is_named_at_once() -> None:
    with pytest.raises(BadRequest) as caught:
        parse_list_query({"status": "later", "top": "²", "continuationToken": "!"})
    fields = [problem["field"] for problem in caught.value.extra["errors"]]
    assert fields == ["status", "top", "continuationToken"]
    assert "top must be an integer" in caught.value.detail


@BOUNDED
@given(
    st.dictionaries(
        st.sampled_from(["status", "kind", "top", "continuationToken", "other"]),
        st.text(max_size=60),
    )
)
def test_any_list_query_parses_or_is_a_bad_request(params: dict[str, str]) -> None:
    try:
        query = parse_list_query(params)
    except BadRequest as error:
        assert error.status == 400 and error.extra["errors"]
        return
    assert 1 <= query.top <= MAX_TOP
    assert all(isinstance(state, OperationState) for state in query.states)


# ------------------------------------------------------------------- headers


def test_undecodable_header_values_are_a_bad_request_naming_the_header() -> None:
    # What a lenient host makes of the bytes ff fe: utf-8 with surrogateescape.
    raw = b"\xff\xfe".decode("utf-8", "surrogateescape")
    with pytest.raises(BadRequest) as caught:
        read_header({"Content-Type": raw}, "Content-Type")
    assert (caught.value.status, caught.value.slug) == (400, "invalid-header")
    assert "Content-Type header" in caught.value.detail
    with pytest.raises(BadRequest):
        read_header({"Accept": "text/csv\x00"}, "Accept")
    assert read_header({}, "Accept") is None
    assert read_header({"Accept": "text/csv;q=0.5,\t*/*"}, "Accept") == "text/csv;q=0.5,\t*/*"
    assert read_header({"If-None-Match": 'W/"caf\xe9"'}, "If-None-Match") == 'W/"caf\xe9"'


@pytest.mark.parametrize("weight", ["nan", "1e999", "²", "-1", "1.0001", "inf", "0x1"])
def test_malformed_accept_weights_weigh_nothing(weight: str) -> None:
    assert choose_media_type(f"text/csv;q={weight}", ["application/json", "text/csv"]) is None
    assert choose_media_type(f"text/csv;Q={weight}, */*;q=0.1", ["text/csv"]) is None


@BOUNDED
@given(st.text(max_size=200), st.text(max_size=100))
def test_header_readers_never_raise_anything_but_bad_request(value: str, etag: str) -> None:
    try:
        read_header({"Accept": value}, "Accept")
    except BadRequest as error:
        assert error.slug == "invalid-header"
    chosen = choose_media_type(value, ["application/json", "text/csv"])
    assert chosen in (None, "application/json", "text/csv")
    assert isinstance(etag_matches(value, etag), bool)
    assert isinstance(is_json_media_type(value), bool)

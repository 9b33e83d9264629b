"""Pure unit tests of the operations framework: validation, status mapping, request
parsing, webhook signing and backoff, idempotency fingerprints, blob naming, the report."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from activities.report import generate_partition, merge_partitions, render_csv, report_document
from operations.blobstore import (
    file_blob_name,
    idempotency_blob_name,
    result_blob_name,
    tombstone_blob_name,
    webhook_blob_name,
)
from operations.errors import InputValidationError, KindRegistrationError
from operations.idempotency import check_key, hash_key, request_fingerprint
from operations.kinds import (
    OperationKind,
    find_kind_by_orchestrator,
    get_kind,
    operation_input,
    operation_output,
    register_kind,
    result_uri_of,
)
from operations.monitor import (
    OperationLinks,
    OperationState,
    ended_problem,
    error_of,
    failure_message,
    is_valid_operation_id,
    operation_state,
    progress_of,
    runtime_statuses_for,
    status_body,
)
from operations.problems import problem_body
from operations.requests import (
    BadRequest,
    choose_media_type,
    decode_continuation,
    encode_continuation,
    etag_matches,
    parse_json_body,
    parse_list_query,
)
from operations.settings import SETTINGS, get_int, get_setting
from operations.validation import InputSchema, IntegerField
from operations.webhooks import WebhookEntry, backoff_delay, signature_header, verify_signature
from orchestrators.report import REPORT, partition_plan

# ------------------------------------------------------------------- validation


def test_report_schema_fills_defaults() -> None:
    assert REPORT.input_schema.validate({}) == {"rows": 1000, "partitions": 4}
    assert REPORT.input_schema.validate({"rows": 7, "partitions": 64}) == {
        "rows": 7,
        "partitions": 64,
    }


def test_integral_floats_are_integers_but_booleans_are_not() -> None:
    assert REPORT.input_schema.validate({"rows": 10.0})["rows"] == 10
    with pytest.raises(InputValidationError) as caught:
        REPORT.input_schema.validate({"rows": False, "partitions": 2.5})
    assert [p.field for p in caught.value.problems] == ["rows", "partitions"]


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InputValidationError) as caught:
        REPORT.input_schema.validate({"rows": 0, "partitions": 99, "x": 1})
    assert {p.field for p in caught.value.problems} == {"rows", "partitions", "x"}
    assert {p.pointer for p in caught.value.problems} == {"#/rows", "#/partitions", "#/x"}


def test_a_non_object_body_is_one_problem_at_the_root() -> None:
    with pytest.raises(InputValidationError) as caught:
        REPORT.input_schema.validate([1])
    assert caught.value.problems[0].pointer == "#"


def test_schema_renders_as_json_schema() -> None:
    schema = REPORT.input_schema.to_json_schema()
    assert schema["additionalProperties"] is False
    assert schema["properties"]["partitions"] == {
        "type": ["integer", "null"],  # optional: null reads as the default
        "minimum": 1,
        "maximum": 64,
        "default": 4,
        "description": "Partitions processed in parallel, one activity each.",
    }
    assert schema["required"] == []
    required = InputSchema((IntegerField("n"),)).to_json_schema()["required"]
    assert required == ["n"]


# ------------------------------------------------------------------- kinds


def test_kinds_are_found_by_name_and_by_orchestrator() -> None:
    assert get_kind("report") is REPORT
    assert find_kind_by_orchestrator("report_operation") is REPORT
    assert find_kind_by_orchestrator("Report_Operation") is REPORT
    assert find_kind_by_orchestrator("something_else") is None


def test_two_kinds_cannot_share_a_name_or_an_orchestrator() -> None:
    clash = OperationKind("report", "other", InputSchema(()), "clash")
    with pytest.raises(KindRegistrationError):
        register_kind(clash)
    with pytest.raises(KindRegistrationError):
        register_kind(OperationKind("other", "report_operation", InputSchema(()), "clash"))
    with pytest.raises(KindRegistrationError):
        OperationKind("pdf", "pdf_op", InputSchema(()), "x", result_types=("application/pdf",))


# ------------------------------------------------------------------- monitor


@pytest.mark.parametrize(
    ("runtime", "state"),
    [
        ("Pending", OperationState.NOT_STARTED),
        ("Running", OperationState.RUNNING),
        ("Suspended", OperationState.RUNNING),
        ("ContinuedAsNew", OperationState.RUNNING),
        ("Completed", OperationState.SUCCEEDED),
        ("Failed", OperationState.FAILED),
        ("Terminated", OperationState.CANCELED),
        ("Canceled", OperationState.CANCELED),
    ],
)
def test_runtime_status_maps_to_the_public_state(runtime: str, state: OperationState) -> None:
    assert operation_state(runtime) is state
    assert runtime in runtime_statuses_for(state)


def test_progress_comes_from_custom_status_and_settles_when_done() -> None:
    custom = {"fraction": 0.5, "message": "half"}
    assert progress_of(OperationState.RUNNING, custom) == {"fraction": 0.5, "message": "half"}
    assert progress_of(OperationState.RUNNING, {"fraction": 7}) == {"fraction": 1.0, "message": ""}
    assert progress_of(OperationState.SUCCEEDED, custom)["fraction"] == 1.0
    assert progress_of(OperationState.NOT_STARTED, None) == {"fraction": 0.0, "message": "queued"}
    assert progress_of(OperationState.RUNNING, "plain text")["message"] == "plain text"


def test_failure_text_becomes_a_problem_detail() -> None:
    raw = (
        "Orchestrator function 'ingest_operation' failed: 1 of 1 URLs could not be copied"
        '\n\n$OutOfProcData$:{"isDone": false}'
    )
    error = error_of(raw)
    assert error["detail"] == error["message"] == "1 of 1 URLs could not be copied"
    assert error["code"] == "OperationFailed"
    assert error["status"] == 422
    assert error["type"].endswith("operation-failed")
    assert error_of(None)["detail"]


def test_failure_messages_lose_sdk_wrappers_and_tracebacks() -> None:
    raw = (
        "Orchestrator function 'ingest_operation' failed: copying gave up: Activity function "
        "'ingest_copy' failed: TransientFetchError: http://x could not be fetched \n "
        'Traceback (most recent call last):\n  File "a.py", line 1'
    )
    assert error_of(raw)["detail"] == "copying gave up: Activity function 'ingest_copy' " + (
        "failed: TransientFetchError: http://x could not be fetched"
    )
    inner = "Activity function 'ingest_copy' failed: TransientFetchError: http://x down \n Tb"
    assert failure_message(inner) == "http://x down \n Tb"


def test_links_follow_the_request_host_prefix_and_key() -> None:
    links = OperationLinks.from_request_url(
        "https://ops.example.net/api/operations/report?code=k3y&x=1"
    )
    assert links.operation("abc") == "https://ops.example.net/api/operations/abc?code=k3y"
    assert links.result("abc") == "https://ops.example.net/api/operations/abc/result?code=k3y"
    assert links.status("abc") == "https://ops.example.net/api/operations/abc/status?code=k3y"
    assert (
        links.without_query().result("abc") == "https://ops.example.net/api/operations/abc/result"
    )
    plain = OperationLinks.from_request_url("http://127.0.0.1:7071/api/operations")
    assert plain.collection({"top": "2"}) == "http://127.0.0.1:7071/api/operations?top=2"


def test_status_body_of_a_succeeded_and_a_failed_operation() -> None:
    links = OperationLinks("http://h/api/operations")
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    done = status_body(
        operation_id="abc",
        kind="report",
        runtime_status="Completed",
        custom_status=None,
        output={"summary": {"rows": 3}},
        created=created,
        updated=None,
        links=links,
    )
    assert done["status"] == "Succeeded"
    assert done["resultUri"] == done["resourceLocation"] == "http://h/api/operations/abc/result"
    assert done["statusUri"] == "http://h/api/operations/abc/status"
    assert done["percentComplete"] == 100
    assert done["createdAt"] == done["updatedAt"] == "2026-01-02T03:04:05Z"
    assert done["summary"] == {"rows": 3}
    failed = status_body(
        operation_id="abc",
        kind="report",
        runtime_status="Failed",
        custom_status=None,
        output="boom",
        created=created,
        updated=created,
        links=links,
    )
    assert failed["error"]["detail"] == failed["error"]["message"] == "boom"
    assert "resultUri" not in failed and "resourceLocation" not in failed
    problem = ended_problem(failed)
    assert problem is not None
    assert (problem["status"], problem["operationStatus"], problem["id"]) == (422, "Failed", "abc")
    assert problem["detail"] == problem["message"] == "boom"
    assert problem["error"] == {"code": "OperationFailed", "message": "boom"}


def test_canceled_and_running_operations_as_the_monitor_answers_them() -> None:
    links = OperationLinks("http://h/api/operations")

    def body_of(runtime_status: str, custom_status: Any) -> dict[str, Any]:
        return status_body(
            operation_id="abc",
            kind="approval",
            runtime_status=runtime_status,
            custom_status=custom_status,
            output=None,
            created=None,
            updated=None,
            links=links,
        )

    canceled = body_of("Terminated", None)
    problem = ended_problem(canceled)
    assert problem is not None
    assert (problem["status"], problem["operationStatus"]) == (409, "Canceled")
    assert problem["type"].endswith("operation-canceled")
    assert problem["message"] == problem["detail"]
    running = body_of("Running", {"fraction": 0.456, "message": "m"})
    assert running["percentComplete"] == 46
    assert ended_problem(running) is None


def test_every_problem_body_repeats_detail_as_message() -> None:
    body = problem_body(404, "operation-not-found", "There is none.", message="other")
    assert body["message"] == body["detail"] == "There is none."


def test_the_output_result_uri_comes_from_the_envelope_or_is_root_relative() -> None:
    envelope = operation_input(REPORT, "abc", {}, "http://h/api/operations/abc/result")
    assert result_uri_of(envelope, "abc") == "http://h/api/operations/abc/result"
    assert result_uri_of({"input": {}}, "abc") == "/api/operations/abc/result"
    assert result_uri_of(None, "abc") == "/api/operations/abc/result"
    assert "resultUri" not in operation_input(REPORT, "abc", {})
    output = operation_output(REPORT, {"application/json": "abc/result.json"}, {}, "/r")
    assert output["resultUri"] == "/r"


@pytest.mark.parametrize(
    ("value", "ok"),
    [("0123abcd" * 4, True), ("a-b", True), ("../etc", False), ("", False), ("a" * 65, False)],
)
def test_operation_ids_cannot_be_path_like(value: str, ok: bool) -> None:
    assert is_valid_operation_id(value) is ok


# ------------------------------------------------------------------- requests


def test_json_bodies_are_checked_for_size_media_type_and_syntax() -> None:
    assert parse_json_body(b"", None, 10) == {}
    assert parse_json_body(b'{"a":1}', "application/json; charset=utf-8", 100) == {"a": 1}
    assert parse_json_body(b"[]", "application/merge-patch+json", 100) == []
    cases = [
        (b"x" * 11, "application/json", 413),
        (b"{}", "text/plain", 415),
        (b"{}", None, 415),
        (b"{", "application/json", 400),
        (b"\xff", "application/json", 400),
    ]
    for body, content_type, status in cases:
        with pytest.raises(BadRequest) as caught:
            parse_json_body(body, content_type, 10)
        assert caught.value.status == status


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        (None, "application/json"),
        ("text/csv", "text/csv"),
        ("text/*", "text/csv"),
        ("*/*", "application/json"),
        ("application/json;q=0.5, text/csv", "text/csv"),
        ("text/csv;q=0, */*", "application/json"),
        ("application/json;q=0, */*", "text/csv"),
        ("text/csv, application/json", "application/json"),
        ("application/*;q=0.2, text/csv;q=0.1", "application/json"),
        ("image/png", None),
    ],
)
def test_accept_negotiation(accept: str | None, chosen: str | None) -> None:
    assert choose_media_type(accept, ["application/json", "text/csv"]) == chosen


def test_etag_comparison_is_weak_and_handles_lists() -> None:
    assert etag_matches('"a", "b"', '"b"')
    assert etag_matches('W/"b"', '"b"')
    assert etag_matches("*", '"b"')
    assert not etag_matches('"a"', '"b"')
    assert not etag_matches(None, '"b"')


def test_list_query_and_continuation_round_trip() -> None:
    hub_token = '{"partition": "x", "row": "y+/="}'
    token = encode_continuation(hub_token)
    query = parse_list_query({"status": "running,Failed", "top": "5", "continuationToken": token})
    assert query.states == (OperationState.RUNNING, OperationState.FAILED)
    assert query.top == 5
    assert query.continuation == hub_token
    assert decode_continuation(token) == hub_token
    forged = [
        "bm90IGpzb24",  # not JSON
        "W10",  # [] : JSON, not ours
        "eyJ2IjoyLCJoIjoieCJ9",  # {"v":2,"h":"x"} : another version
        "eyJ2IjoxLCJoIjoiIn0",  # {"v":1,"h":""} : an empty hub token
        "!!!",
    ]
    for bad in forged:
        with pytest.raises(BadRequest):
            decode_continuation(bad)


# ------------------------------------------------------------------- webhooks


def test_signature_is_hmac_sha256_over_timestamp_and_body() -> None:
    body = b'{"event":"operation.ended"}'
    header = signature_header("secret", 1_700_000_000, body)
    expected = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert verify_signature("secret", header, body, now=1_700_000_010)
    assert not verify_signature("secret", header, body + b"x", now=1_700_000_010)
    assert not verify_signature("other", header, body, now=1_700_000_010)
    assert not verify_signature("secret", header, body, now=1_700_010_000)
    assert not verify_signature("secret", "garbage", body, now=1_700_000_000)


def test_backoff_doubles_with_jitter_and_a_cap() -> None:
    rng = random.Random(1)
    delays = [
        backoff_delay(n, base_seconds=2, cap_seconds=60, rand=rng.random) for n in range(1, 9)
    ]
    for attempt, delay in enumerate(delays, start=1):
        full = min(60, 2 * 2 ** (attempt - 1))
        assert full / 2 <= delay <= full
    assert backoff_delay(1, base_seconds=2, cap_seconds=60, rand=lambda: 1.0) == 2


def test_outbox_entry_round_trips_and_counts_attempts() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    entry = WebhookEntry("abc", "http://r/h", "http://h/api/operations", "", 0, now, now)
    assert entry.is_due(now)
    leased = entry.leased(now, timedelta(seconds=10))
    assert not leased.is_due(now + timedelta(seconds=5))
    failed = entry.failed(now, 4.0, "HTTP 500")
    assert failed.attempts == 1
    assert failed.next_attempt_at == now + timedelta(seconds=4)
    assert WebhookEntry.from_json(failed.to_json()) == failed


# ------------------------------------------------------------------- idempotency, names


def test_fingerprint_ignores_key_order_but_not_values_or_kind() -> None:
    assert request_fingerprint("report", {"a": 1, "b": 2}) == request_fingerprint(
        "report", {"b": 2, "a": 1}
    )
    assert request_fingerprint("report", {"a": 1}) != request_fingerprint("report", {"a": 2})
    assert request_fingerprint("report", {}) != request_fingerprint("approval", {})


def test_idempotency_keys_are_checked_and_hashed() -> None:
    assert check_key("b7c2b1c6-0a0e-4d1e-9d2f-3f3b1c2d4e5f") is None
    assert check_key("") and check_key("a b") and check_key("é") and check_key("x" * 256)
    assert len(hash_key("any key")) == 64


def test_blob_names_derive_from_the_operation_id() -> None:
    assert result_blob_name("abc", "application/json") == "abc/result.json"
    assert result_blob_name("abc", "text/csv") == "abc/result.csv"
    assert file_blob_name("abc", 3) == "abc/files/003"
    assert tombstone_blob_name("abc") == "tombstones/abc.json"
    assert webhook_blob_name("abc") == "webhooks/abc.json"
    assert webhook_blob_name("abc", abandoned=True) == "webhooks-abandoned/abc.json"
    assert idempotency_blob_name("ff") == "idempotency/ff.json"


# ------------------------------------------------------------------- report kind


def test_partition_plan_spreads_rows_evenly() -> None:
    assert partition_plan(10, 3) == [4, 3, 3]
    assert partition_plan(2, 4) == [1, 1, 0, 0]
    assert sum(partition_plan(1_000_003, 64)) == 1_000_003


def test_partitions_are_deterministic_and_merge_exactly() -> None:
    first = generate_partition(0, 2, 500)
    assert first == generate_partition(0, 2, 500)
    assert first != generate_partition(1, 2, 500)
    parts = [first, generate_partition(1, 2, 300)]
    merged = merge_partitions(parts)
    assert sum(s["count"] for s in merged.values()) == 800
    assert merged == merge_partitions(list(reversed(parts)))
    for stats in merged.values():
        if stats["count"]:
            assert 1 <= stats["min"] <= stats["max"] <= 10_000


def test_report_document_counts_rows_and_renders_csv() -> None:
    parts = [generate_partition(i, 3, n) for i, n in enumerate([3, 2, 0])]
    document = report_document("abc", parts, "2026-01-01T00:00:00Z")
    assert document["rows"] == 5
    assert document["totals"]["count"] == 5
    lines = render_csv(document).splitlines()
    assert lines[0] == "category,count,sum,min,max,mean"
    assert len(lines) == 1 + len(document["categories"])


# ------------------------------------------------------------------- settings


def test_every_setting_has_a_description_and_typed_defaults_parse() -> None:
    names = [s.name for s in SETTINGS]
    assert len(names) == len(set(names))
    for setting in SETTINGS:
        assert setting.description
    for name in (
        "OPS_MAX_REQUEST_BYTES",
        "OPS_RETRY_AFTER_SECONDS",
        "OPS_IDEMPOTENCY_TTL_SECONDS",
        "OPS_OPERATION_TTL_SECONDS",
        "OPS_WEBHOOK_MAX_ATTEMPTS",
    ):
        assert get_int(name) > 0
    with pytest.raises(KeyError):
        get_setting("NOT_DECLARED")

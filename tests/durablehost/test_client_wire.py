"""Unit tests for durablehost.wire.client: the JSON shapes clients see, against golden JSON."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

import azure.durable_functions as df
import azure.functions as func
import pytest

from durablehost.errors import InvalidInputError
from durablehost.model.history import EventType, HistoryEvent
from durablehost.model.instances import InstancePage, InstanceStatus, RuntimeStatus
from durablehost.wire.client import (
    QueryParameters,
    check_status_payload,
    client_binding_json,
    decode_client_payload,
    format_event_time,
    format_status_time,
    history_json,
    json_value,
    list_json,
    parse_query_time,
    problem_details,
    public_base_url,
    purge_result_json,
    status_json,
)

HOOK = "http://127.0.0.1:7071/runtime/webhooks/durabletask"
QS = "taskHub=TestHubName&connection=Storage"


def test_client_binding_json_matches_the_extension_shape() -> None:
    binding = json.loads(client_binding_json("http://127.0.0.1:7071", "TestHubName"))
    assert binding == {
        "taskHubName": "TestHubName",
        "connectionName": None,
        "creationUrls": {
            "createNewInstancePostUri": f"{HOOK}/orchestrators/{{functionName}}[/{{instanceId}}]",
            "createAndWaitOnNewInstancePostUri": f"{HOOK}/orchestrators/{{functionName}}"
            "[/{instanceId}]?timeout={timeoutInSeconds}&pollingInterval={intervalInSeconds}",
        },
        "managementUrls": {
            "id": "INSTANCEID",
            "statusQueryGetUri": f"{HOOK}/instances/INSTANCEID?{QS}",
            "sendEventPostUri": f"{HOOK}/instances/INSTANCEID/raiseEvent/{{eventName}}?{QS}",
            "terminatePostUri": f"{HOOK}/instances/INSTANCEID/terminate?reason={{text}}&{QS}",
            "rewindPostUri": f"{HOOK}/instances/INSTANCEID/rewind?reason={{text}}&{QS}",
            "purgeHistoryDeleteUri": f"{HOOK}/instances/INSTANCEID?{QS}",
            "restartPostUri": f"{HOOK}/instances/INSTANCEID/restart?{QS}",
            "suspendPostUri": f"{HOOK}/instances/INSTANCEID/suspend?reason={{text}}&{QS}",
            "resumePostUri": f"{HOOK}/instances/INSTANCEID/resume?reason={{text}}&{QS}",
        },
        "baseUrl": HOOK,
        "requiredQueryStringParameters": "",
        "rpcBaseUrl": HOOK + "/",
    }


def test_client_binding_json_carries_keys_connection_and_a_separate_rpc_address() -> None:
    binding = json.loads(
        client_binding_json(
            "https://public.example.com/",
            "Hub A",
            connection="MyStorage",
            required_query={"code": "k/1"},
            rpc_base_url="http://127.0.0.1:9999/runtime/webhooks/durabletask",
        )
    )
    assert binding["rpcBaseUrl"] == "http://127.0.0.1:9999/runtime/webhooks/durabletask/"
    assert binding["requiredQueryStringParameters"] == "code=k%2F1"
    assert binding["managementUrls"]["statusQueryGetUri"] == (
        "https://public.example.com/runtime/webhooks/durabletask/instances/INSTANCEID"
        "?taskHub=Hub%20A&connection=MyStorage&code=k%2F1"
    )
    assert binding["creationUrls"]["createNewInstancePostUri"].endswith("?code=k%2F1")


def test_the_sdk_client_builds_its_urls_from_our_binding() -> None:
    client = df.DurableOrchestrationClient(client_binding_json("http://127.0.0.1:7071", "H"))
    assert client._get_start_new_url(None, "Hello") == f"{HOOK}/orchestrators/Hello"
    request = func.HttpRequest("POST", "http://proxy.example:8443/api/start", body=b"")
    response = client.create_check_status_response(request, "abc")
    assert response.status_code == 202
    assert response.headers["Location"] == (
        "http://proxy.example:8443/runtime/webhooks/durabletask/instances/abc"
        "?taskHub=H&connection=Storage"
    )
    payload = json.loads(response.get_body())
    assert payload["id"] == "abc"
    assert payload["sendEventPostUri"].startswith(
        "http://proxy.example:8443/runtime/webhooks/durabletask/instances/abc/raiseEvent/"
    )


def test_check_status_payload_leaves_out_rewind_and_encodes_the_id() -> None:
    payload = check_status_payload("http://h:1", "a b/c", hub_name="Hub")
    assert list(payload) == [
        "id",
        "statusQueryGetUri",
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "restartPostUri",
        "suspendPostUri",
        "resumePostUri",
    ]
    assert payload["id"] == "a b/c"
    assert payload["statusQueryGetUri"] == (
        "http://h:1/runtime/webhooks/durabletask/instances/a%20b%2Fc?taskHub=Hub&connection=Storage"
    )


@dataclass
class FakeRequest:
    scheme: str = "http"
    host: str = "127.0.0.1:7071"
    headers: Mapping[str, str] = field(default_factory=dict)


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        (FakeRequest(), "http://127.0.0.1:7071"),
        (
            FakeRequest(headers={"X-Forwarded-Host": "app.example", "X-Forwarded-Proto": "https"}),
            "https://app.example",
        ),
        (FakeRequest(headers={"X-Forwarded-Proto": "HTTPS"}), "https://127.0.0.1:7071"),
        (FakeRequest(headers={"X-Forwarded-Host": "a.example:8080"}), "http://a.example:8080"),
        (
            FakeRequest(headers={"X-Forwarded-Host": "a.example, p2", "X-Forwarded-Port": "444"}),
            "http://a.example:444",
        ),
        (
            FakeRequest(headers={"X-Forwarded-Host": "a.ex:443", "X-Forwarded-Proto": "https"}),
            "https://a.ex",
        ),
        (
            FakeRequest(headers={"Forwarded": 'for=1.2.3.4;host="b.example";proto=https'}),
            "https://b.example",
        ),
        # Garbage is ignored rather than copied into the URLs we hand out.
        (
            FakeRequest(headers={"X-Forwarded-Host": "evil/path?x", "X-Forwarded-Proto": "ftp"}),
            "http://127.0.0.1:7071",
        ),
        (FakeRequest(headers={"X-Forwarded-Host": "[::1]:99"}), "http://[::1]:99"),
    ],
)
def test_public_base_url_honours_forwarding_headers(request_: FakeRequest, expected: str) -> None:
    assert public_base_url(request_) == expected


CREATED = datetime(2024, 5, 1, 10, 20, 30, 123456, tzinfo=UTC)


def _status(**overrides: object) -> InstanceStatus:
    values: dict[str, object] = {
        "instance_id": "abc",
        "name": "HelloSequence",
        "runtime_status": RuntimeStatus.COMPLETED,
        "created_time": CREATED,
        "last_updated_time": CREATED + timedelta(seconds=5),
        "input": '{"city": "Tokyo"}',
        "output": '["Hello Tokyo!"]',
        "custom_status": '"step 2"',
    }
    values.update(overrides)
    return InstanceStatus(**values)  # type: ignore[arg-type]


def test_status_json_golden() -> None:
    assert status_json(_status()) == {
        "name": "HelloSequence",
        "instanceId": "abc",
        "runtimeStatus": "Completed",
        "input": {"city": "Tokyo"},
        "customStatus": "step 2",
        "output": ["Hello Tokyo!"],
        "createdTime": "2024-05-01T10:20:30Z",
        "lastUpdatedTime": "2024-05-01T10:20:35Z",
    }


def test_status_json_hides_input_and_keeps_plain_text_output() -> None:
    body = status_json(_status(output="Orchestrator function failed: boom"), show_input=False)
    assert body["input"] is None
    assert body["output"] == "Orchestrator function failed: boom"


def test_times_are_utc_whatever_zone_they_come_in() -> None:
    eastern = datetime(2024, 5, 1, 6, 0, 0, tzinfo=timezone(timedelta(hours=-4)))
    assert format_status_time(eastern) == "2024-05-01T10:00:00Z"
    assert format_status_time(datetime(2024, 5, 1, 10, 0, 0)) == "2024-05-01T10:00:00Z"
    assert format_event_time(CREATED) == "2024-05-01T10:20:30.1234560Z"


def _event(kind: EventType, seconds: int, **fields: object) -> HistoryEvent:
    return HistoryEvent(event_type=kind, timestamp=CREATED + timedelta(seconds=seconds), **fields)  # type: ignore[arg-type]


HISTORY = [
    _event(EventType.ORCHESTRATOR_STARTED, 0),
    _event(EventType.EXECUTION_STARTED, 0, name="HelloSequence", input='{"city": "Tokyo"}'),
    _event(EventType.TASK_SCHEDULED, 0, event_id=0, name="SayHello", input='"Tokyo"'),
    _event(EventType.TASK_SCHEDULED, 0, event_id=1, name="Fails", input="null"),
    _event(EventType.TIMER_CREATED, 0, event_id=2, fire_at=CREATED + timedelta(minutes=1)),
    _event(EventType.ORCHESTRATOR_COMPLETED, 0),
    _event(EventType.ORCHESTRATOR_STARTED, 1),
    _event(EventType.TASK_COMPLETED, 1, task_scheduled_id=0, result='"Hello Tokyo!"'),
    _event(EventType.TASK_FAILED, 1, task_scheduled_id=1, reason="boom", details="Traceback"),
    _event(EventType.EVENT_RAISED, 1, name="Approval", input="true"),
    _event(EventType.TIMER_FIRED, 1, timer_id=2, fire_at=CREATED + timedelta(minutes=1)),
    _event(EventType.ORCHESTRATOR_COMPLETED, 1),
    _event(
        EventType.EXECUTION_COMPLETED,
        2,
        result='["Hello Tokyo!"]',
        orchestration_status="Completed",
    ),
]


def test_history_json_golden_with_output() -> None:
    assert history_json(HISTORY, show_history_output=True) == [
        {
            "EventType": "ExecutionStarted",
            "FunctionName": "HelloSequence",
            "Input": '{"city": "Tokyo"}',
            "Timestamp": "2024-05-01T10:20:30.1234560Z",
        },
        {
            "EventType": "TimerCreated",
            "FireAt": "2024-05-01T10:21:30.1234560Z",
            "Timestamp": "2024-05-01T10:20:30.1234560Z",
        },
        {
            "EventType": "TaskCompleted",
            "Result": "Hello Tokyo!",
            "ScheduledTime": "2024-05-01T10:20:30.1234560Z",
            "FunctionName": "SayHello",
            "Input": '"Tokyo"',
            "Timestamp": "2024-05-01T10:20:31.1234560Z",
        },
        {
            "EventType": "TaskFailed",
            "Reason": "boom",
            "Details": "Traceback",
            "ScheduledTime": "2024-05-01T10:20:30.1234560Z",
            "FunctionName": "Fails",
            "Input": "null",
            "Timestamp": "2024-05-01T10:20:31.1234560Z",
        },
        {
            "EventType": "EventRaised",
            "Name": "Approval",
            "Input": "true",
            "Timestamp": "2024-05-01T10:20:31.1234560Z",
        },
        {
            "EventType": "TimerFired",
            "FireAt": "2024-05-01T10:21:30.1234560Z",
            "Timestamp": "2024-05-01T10:20:31.1234560Z",
        },
        {
            "EventType": "ExecutionCompleted",
            "OrchestrationStatus": "Completed",
            "Result": ["Hello Tokyo!"],
            "Timestamp": "2024-05-01T10:20:32.1234560Z",
        },
    ]


def test_history_json_without_output_or_input_keeps_pending_schedules() -> None:
    running = [*HISTORY[:6]]
    items = history_json(running, show_input=False)
    assert [item["EventType"] for item in items] == [
        "ExecutionStarted",
        "TaskScheduled",
        "TaskScheduled",
        "TimerCreated",
    ]
    assert all("Input" not in item and "Result" not in item for item in items)
    assert items[1]["Name"] == "SayHello"


def test_status_json_with_history() -> None:
    body = status_json(_status(history=HISTORY[:3]))
    assert [e["EventType"] for e in body["historyEvents"]] == ["ExecutionStarted", "TaskScheduled"]


def test_list_json_never_carries_history() -> None:
    page = InstancePage(instances=(_status(history=HISTORY), _status(instance_id="b")))
    assert [item.get("historyEvents") for item in list_json(page)] == [None, None]
    assert [item["instanceId"] for item in list_json(page)] == ["abc", "b"]


def test_purge_and_problem_shapes() -> None:
    assert purge_result_json(3) == {"instancesDeleted": 3}
    assert problem_details(404, "No instance 'x'.", ExceptionMessage="m") == {
        "type": "about:blank",
        "title": "Not Found",
        "status": 404,
        "detail": "No instance 'x'.",
        "ExceptionMessage": "m",
        # For clients that read errors the JavaScript way.
        "message": "No instance 'x'.",
    }


@pytest.mark.parametrize(
    ("text", "value"),
    [(None, None), ("  ", ""), ('{"a": 1}', {"a": 1}), ("plain reason", "plain reason")],
)
def test_json_value_falls_back_to_the_raw_string(text: str | None, value: object) -> None:
    assert json_value(text) == value


@pytest.mark.parametrize(
    ("body", "payload"),
    [
        ("", None),
        ("  ", None),
        ('{"a": 1}', '{"a": 1}'),
        ('"{\\"a\\": 1}"', '{"a": 1}'),  # what the SDK client sends
        ('"5"', "5"),
        ('"hello"', '"hello"'),  # a plain string stays a string
        ("null", "null"),
        ('"null"', "null"),  # SDK raise_event(..., None)
        ("42", "42"),
    ],
)
def test_decode_client_payload(body: str, payload: str | None) -> None:
    assert decode_client_payload(body) == payload


def test_decode_client_payload_rejects_invalid_json_with_a_hint() -> None:
    with pytest.raises(InvalidInputError, match="not valid JSON"):
        decode_client_payload("{not json")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-01T10:00:00Z", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T10:00:00.1234567Z", datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
        ("2024-05-01T12:00:00 02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),  # '+' unencoded
        ("1-01-01T00:00:00.000000Z", datetime(1, 1, 1, tzinfo=UTC)),  # the SDK's datetime.min
    ],
)
def test_parse_query_time(text: str, expected: datetime) -> None:
    assert parse_query_time("createdTimeFrom", text) == expected


def test_parse_query_time_says_what_it_wants() -> None:
    with pytest.raises(InvalidInputError, match=r"createdTimeTo='tomorrow'.*ISO 8601"):
        parse_query_time("createdTimeTo", "tomorrow")


def test_query_parameters_are_case_insensitive_and_typed() -> None:
    query = QueryParameters(
        {"SHOWHISTORY": "True", "top": "3", "runtimeStatus": "running, Completed,", "t": "1.5"}
    )
    assert query.flag("showHistory", False) is True
    assert query.flag("showInput", True) is True
    assert query.positive_int("top") == 3
    assert query.seconds("t") == 1.5
    assert query.statuses("runtimeStatus") == {RuntimeStatus.RUNNING, RuntimeStatus.COMPLETED}
    assert query.statuses("missing") is None
    assert query.moment("createdTimeFrom") is None


@pytest.mark.parametrize(
    ("params", "call", "fragment"),
    [
        ({"showInput": "yes"}, lambda q: q.flag("showInput", True), "true or false"),
        ({"top": "-1"}, lambda q: q.positive_int("top"), "positive whole number"),
        ({"top": "1.5"}, lambda q: q.positive_int("top"), "positive whole number"),
        ({"timeout": "inf"}, lambda q: q.seconds("timeout"), "seconds"),
        ({"timeout": "-3"}, lambda q: q.seconds("timeout"), "seconds"),
        ({"runtimeStatus": "Done"}, lambda q: q.statuses("runtimeStatus"), "Pending, Running"),
    ],
)
def test_query_parameters_reject_bad_values(
    params: dict[str, str], call: Callable[[QueryParameters], object], fragment: str
) -> None:
    with pytest.raises(InvalidInputError, match=fragment):
        call(QueryParameters(params))


def test_history_json_shows_lifecycle_events() -> None:
    events = [
        _event(EventType.EXECUTION_SUSPENDED, 0, input="pause"),
        _event(EventType.EXECUTION_RESUMED, 1, reason="go"),
        _event(EventType.GENERIC_EVENT, 2, name="rewind", input="fixed"),
        _event(EventType.EXECUTION_TERMINATED, 3, input='"enough"'),
    ]
    assert [
        {k: v for k, v in item.items() if k != "Timestamp"} for item in history_json(events)
    ] == [
        {"EventType": "ExecutionSuspended", "Reason": "pause"},
        {"EventType": "ExecutionResumed", "Reason": "go"},
        {"EventType": "GenericEvent", "Data": "fixed"},
        {"EventType": "ExecutionTerminated", "Input": '"enough"'},
    ]

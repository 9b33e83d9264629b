"""Pure parts of the storage triggers: connections from app settings, host.json queue
options, binding expressions and blob path patterns, message encoding."""

from __future__ import annotations

import pytest

from durablehost.app.invocation import BindingError
from durablehost.errors import ConfigError
from durablehost.triggers.binding_expressions import BlobPathPattern, resolve_template
from durablehost.triggers.blob_trigger import blob_host_id, poison_threshold, receipt_name
from durablehost.triggers.queue_trigger import QueueOptions, parse_timespan
from durablehost.triggers.storage_bindings import decode_message, encode_message
from durablehost.triggers.storage_connections import DEVELOPMENT_ACCOUNT, resolve_connection

AZURITE = "UseDevelopmentStorage=true"


def test_development_storage_is_azurite_on_its_default_ports() -> None:
    connection = resolve_connection(None, {"AzureWebJobsStorage": AZURITE})
    assert connection.setting == "AzureWebJobsStorage"
    assert connection.blob_url == f"http://127.0.0.1:10000/{DEVELOPMENT_ACCOUNT}"
    assert connection.queue_url == f"http://127.0.0.1:10001/{DEVELOPMENT_ACCOUNT}"
    assert connection.connection_string is not None
    assert f"AccountName={DEVELOPMENT_ACCOUNT}" in connection.connection_string
    assert not connection.uses_identity


def test_development_storage_behind_a_proxy() -> None:
    text = "UseDevelopmentStorage=true;DevelopmentStorageProxyUri=http://proxy:8080"
    connection = resolve_connection("", {"AzureWebJobsStorage": text})
    assert connection.queue_url == f"http://proxy:8080/{DEVELOPMENT_ACCOUNT}"


def test_the_connection_property_names_another_setting_with_the_host_prefix_fallback() -> None:
    env = {
        "Orders": "DefaultEndpointsProtocol=https;AccountName=orders;AccountKey=a2V5",
        "AzureWebJobsOther": (
            "AccountName=other;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn"
        ),
    }
    orders = resolve_connection("Orders", env)
    assert orders.blob_url == "https://orders.blob.core.windows.net"
    assert orders.queue_url == "https://orders.queue.core.windows.net"
    other = resolve_connection("Other", env)
    assert other.setting == "AzureWebJobsOther"
    assert other.queue_url == "https://other.queue.core.chinacloudapi.cn"


def test_explicit_endpoints_win_and_a_missing_one_is_named() -> None:
    env = {"S": "AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:9/a/"}
    connection = resolve_connection("S", env)
    assert connection.blob_url == "http://127.0.0.1:9/a"
    assert connection.queue_url == "https://a.queue.core.windows.net"
    only_blob = resolve_connection(
        "S", {"S": "BlobEndpoint=http://127.0.0.1:9/a;SharedAccessSignature=sv=1"}
    )
    with pytest.raises(ConfigError, match="S__queueServiceUri"):
        only_blob.service_url("queue")


def test_identity_connections_from_service_uris() -> None:
    env = {
        "Store__blobServiceUri": "https://acct.blob.core.windows.net/",
        "Store__queueServiceUri": "https://acct.queue.core.windows.net",
        "Store__clientId": "1234",
    }
    connection = resolve_connection("Store", env)
    assert connection.uses_identity
    assert connection.blob_url == "https://acct.blob.core.windows.net"
    assert connection.queue_url == "https://acct.queue.core.windows.net"
    assert connection.client_id == "1234"
    # serviceUri is the endpoint of the service the binding uses.
    single = resolve_connection("Q", {"Q__serviceUri": "https://acct.queue.core.windows.net"})
    assert single.queue_url == "https://acct.queue.core.windows.net"
    by_account = resolve_connection(None, {"AzureWebJobsStorage__accountName": "acct"})
    assert by_account.blob_url == "https://acct.blob.core.windows.net"
    assert by_account.queue_url == "https://acct.queue.core.windows.net"
    colon = resolve_connection("C", {"C:serviceUri": "https://c.blob.core.windows.net"})
    assert colon.blob_url == "https://c.blob.core.windows.net"


def test_a_missing_connection_says_which_settings_were_looked_for() -> None:
    with pytest.raises(ConfigError, match="set Orders or AzureWebJobsOrders"):
        resolve_connection("Orders", {})
    with pytest.raises(ConfigError, match="AzureWebJobsStorage"):
        resolve_connection(None, {"AzureWebJobsStorage": "  "})
    with pytest.raises(ConfigError, match="is not Key=Value"):
        resolve_connection(None, {"AzureWebJobsStorage": "garbage"})


def test_queue_options_defaults_and_host_json_values() -> None:
    defaults = QueueOptions.from_extensions({})
    assert (defaults.batch_size, defaults.max_dequeue_count) == (16, 5)
    assert (defaults.max_polling_interval, defaults.visibility_timeout) == (60.0, 0.0)
    assert defaults.message_encoding == "base64"
    options = QueueOptions.from_extensions(
        {
            "queues": {
                "batchSize": 8,
                "newBatchThreshold": 1,
                "maxPollingInterval": 2000,  # milliseconds, as older host.json files say
                "visibilityTimeout": "00:00:30",
                "maxDequeueCount": 2,
                "messageEncoding": "None",
            }
        }
    )
    assert (options.batch_size, options.new_batch_threshold) == (8, 1)
    assert (options.max_polling_interval, options.visibility_timeout) == (2.0, 30.0)
    assert (options.max_dequeue_count, options.message_encoding) == (2, "none")
    assert parse_timespan("1.02:00:00.5", "x") == 93600.5


@pytest.mark.parametrize(
    ("queues", "message"),
    [
        ({"batchSize": 33}, "batchSize must be an integer from 1 to 32"),
        ({"batchSize": "4"}, "batchSize"),
        ({"messageEncoding": "utf8"}, "messageEncoding must be 'base64' or 'none'"),
        ({"visibilityTimeout": 30}, "visibilityTimeout must be a TimeSpan"),
        ({"maxPollingInterval": "soon"}, "maxPollingInterval must be a TimeSpan"),
        ({"maxDequeueCount": 0}, "maxDequeueCount"),
    ],
)
def test_bad_queue_options_name_the_setting(queues: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        QueueOptions.from_extensions({"queues": queues})
    with pytest.raises(ConfigError, match=r"extensions\.queues must be a JSON object"):
        QueueOptions.from_extensions({"queues": [1]})


def test_blob_poison_threshold_and_receipt_names() -> None:
    assert poison_threshold({}) == 5
    assert poison_threshold({"blobs": {"poisonBlobThreshold": 2}}) == 2
    with pytest.raises(ConfigError, match="poisonBlobThreshold"):
        poison_threshold({"blobs": {"poisonBlobThreshold": 0}})
    assert blob_host_id("My_Function App!") == "my-function-app"
    assert len(blob_host_id("x" * 40)) == 32
    assert (
        receipt_name("h", "f", '"0x8D1"', "in", "a/b.txt")
        == "blobreceipts/h/Host.Functions.f/0x8D1/in/a/b.txt"
    )


def test_blob_path_patterns(monkeypatch: pytest.MonkeyPatch) -> None:
    pattern = BlobPathPattern.parse("samples-workitems/{name}")
    assert (pattern.container, pattern.prefix) == ("samples-workitems", "")
    assert pattern.match("dir/file.txt") == {"name": "dir/file.txt"}
    split = BlobPathPattern.parse("input/in-{name}.{ext}")
    assert split.prefix == "in-"
    assert split.match("in-report.2024.csv") == {"name": "report.2024", "ext": "csv"}
    assert split.match("out-report.csv") is None
    assert BlobPathPattern.parse("bare").match("anything") == {"name": "anything"}
    monkeypatch.setenv("INBOX", "inbox-1")
    assert BlobPathPattern.parse("%INBOX%/{name}.txt").text == "inbox-1/{name}.txt"
    with pytest.raises(ConfigError, match="container name without expressions"):
        BlobPathPattern.parse("{container}/{name}")
    with pytest.raises(ConfigError, match="is not a name"):
        BlobPathPattern.parse("c/{a b}")


def test_binding_expressions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OUT_CONTAINER", "results")
    data = {"name": "a", "Order": {"Id": 7}}
    assert resolve_template("%OUT_CONTAINER%/{name}-{order.id}", data, what="w") == "results/a-7"
    guid = resolve_template("x/{rand-guid}", {}, what="w")
    assert len(guid) == len("x/") + 36
    assert resolve_template("{DateTime}", {}, what="w").endswith("Z")
    with pytest.raises(BindingError, match=r"'\{missing\}'.*provides: Order, name"):
        resolve_template("c/{missing}", data, what="blob output 'out'")
    with pytest.raises(BindingError, match="'%NOPE_NOT_SET%'"):
        resolve_template("%NOPE_NOT_SET%/x", {}, what="w")


def test_message_encoding() -> None:
    assert encode_message("héllo", "base64") == "aMOpbGxv"
    assert decode_message("aMOpbGxv", "base64") == "héllo"
    assert decode_message(encode_message(b"\xff\x00", "base64"), "base64") == b"\xff\x00"
    assert encode_message("plain", "none") == decode_message("plain", "none") == "plain"
    with pytest.raises(ValueError, match="not valid base64"):
        decode_message("{not base64}", "base64")
    with pytest.raises(BindingError, match="messageEncoding 'none'"):
        encode_message(b"\xff", "none")

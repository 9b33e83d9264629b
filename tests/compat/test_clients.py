"""Every client family against the real app: the result on success, the operation's own
message on failure (with no poll after the failure showed), a clear answer on cancel and on
expiry, and Retry-After on every answer that told the client to keep polling.

Each family runs as its users would write it (tests/compat/js, tests/compat/sh,
azure_core_lro.py, durable_status.py, opsclient's public API) and records the answers it
saw itself; see families.py for the interface.
"""

from __future__ import annotations

import pytest

from tests.app.conftest import AppHost
from tests.compat.families import ClientFamily, StoredOperation, Unwatched
from tests.compat.outcomes import Ending, Outcome, exchanges_after_the_end, non_terminal_answers
from tests.compat.python_clients import AzureCoreClient
from tests.compat.watchers import CancelWhenRunning, IdWatcher

pytestmark = pytest.mark.e2e

REPORT_INPUT = {"rows": 120, "partitions": 2}


def _assert_polled_as_asked(
    family: ClientFamily, outcome: Outcome, *, polls_after_the_end: int
) -> None:
    """Retry-After on every "keep polling" answer; nothing more than `polls_after_the_end`
    requests once an answer showed that the operation had ended."""
    if not family.records_exchanges:
        return  # the CLI: the same library's exchanges are checked through opsclient-sync
    missing = [x for x in non_terminal_answers(outcome.exchanges) if not x.retry_after]
    assert not missing, f"non-terminal answers without Retry-After:\n{outcome.describe()}"
    late = exchanges_after_the_end(outcome.exchanges)
    assert len(late) <= polls_after_the_end, f"polled on after the end:\n{outcome.describe()}"


def test_success_hands_back_the_result(family: ClientFamily, compat_host: AppHost) -> None:
    outcome = family.run(compat_host.url, "report", REPORT_INPUT, Unwatched())

    assert outcome.ending is Ending.SUCCEEDED, outcome.describe()
    assert outcome.result["rows"] == REPORT_INPUT["rows"]
    if family.records_exchanges:
        assert non_terminal_answers(outcome.exchanges), outcome.describe()
    # The answer that showed the end (303, Succeeded, Completed), then the result's GET.
    _assert_polled_as_asked(family, outcome, polls_after_the_end=1)


def test_a_large_result_arrives_through_the_storage_redirect(
    family: ClientFamily, compat_host: AppHost, file_server: str
) -> None:
    urls = [f"{file_server}/file-{n}.csv" for n in range(16)]
    watch = IdWatcher()
    outcome = family.run(compat_host.url, "ingest", {"urls": urls}, watch)

    (operation_id,) = watch.ids
    result = compat_host.http.get(f"{compat_host.api}/{operation_id}/result")
    assert result.status_code == 302, "the manifest should be above OPS_RESULT_REDIRECT_BYTES"
    if not family.follows_result_redirect:
        # azure-core's final GET accepts only 200/201/202/204, and PipelineClient's default
        # policies have no RedirectPolicy: docs/client.md says to add one.
        assert outcome.ending is Ending.ERROR, outcome.describe()
        assert outcome.status_code == 302, outcome.describe()
        return
    assert outcome.ending is Ending.SUCCEEDED, outcome.describe()
    assert [file["url"] for file in outcome.result["files"]] == urls
    # The end, the result's 302, storage's 200 (a client that follows redirects by
    # itself reports the last two as one).
    _assert_polled_as_asked(family, outcome, polls_after_the_end=2)


def test_a_plain_azure_core_pipeline_with_a_redirect_policy_gets_a_large_result(
    compat_host: AppHost, file_server: str
) -> None:
    urls = [f"{file_server}/plain-{n}.csv" for n in range(16)]
    family = AzureCoreClient("plain-redirects")
    outcome = family.run(compat_host.url, "ingest", {"urls": urls}, Unwatched())

    assert outcome.ending is Ending.SUCCEEDED, outcome.describe()
    assert [file["url"] for file in outcome.result["files"]] == urls
    assert [x.status for x in outcome.exchanges[-2:]] == [302, 200], outcome.describe()


def test_failure_stops_with_the_operations_message(
    family: ClientFamily, compat_host: AppHost, missing_file_url: str
) -> None:
    watch = IdWatcher()
    outcome = family.run(compat_host.url, "ingest", {"urls": [missing_file_url]}, watch)

    (operation_id,) = watch.ids
    status = compat_host.http.get(f"{compat_host.api}/{operation_id}/status").json()
    assert status["status"] == "Failed"
    expected = status["error"]["message"]
    assert "404" in expected and missing_file_url in expected
    assert outcome.ending is Ending.FAILED, outcome.describe()
    assert expected in outcome.message, outcome.describe()
    _assert_polled_as_asked(family, outcome, polls_after_the_end=0)


def test_cancel_ends_with_a_clear_canceled_answer(
    family: ClientFamily, compat_host: AppHost
) -> None:
    body = {"subject": "compat: cancel me while a client polls", "timeoutSeconds": 3600}
    reports = family.records_exchanges
    with CancelWhenRunning(compat_host, client_reports_answers=reports) as watch:
        outcome = family.run(compat_host.url, "approval", body, watch)

    assert watch.canceled, outcome.describe()
    assert outcome.ending is Ending.CANCELED, outcome.describe()
    assert "cancel" in outcome.message.lower(), outcome.describe()
    _assert_polled_as_asked(family, outcome, polls_after_the_end=0)


def test_an_expired_operation_is_a_clear_error(
    family: ClientFamily, expired_operation: StoredOperation
) -> None:
    outcome = family.resume(expired_operation)

    assert outcome.ending is Ending.ERROR, outcome.describe()
    assert outcome.status_code == family.expired_status, outcome.describe()
    if family.expired_status == 410:
        assert "expired" in outcome.message, outcome.describe()
    _assert_polled_as_asked(family, outcome, polls_after_the_end=0)

"""The dashboard in a real headless Chromium against a real durablehost process.

Each test drives the page as a person would (labelled fields, buttons by their names)
and checks both what the page shows and what the host then holds, through the
management API. The page polls every 2 s, so every wait on the page is a Playwright
expectation with a deadline, never a sleep.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from durablehost.process import HostProcess
from tests.dashboard.conftest import DASHBOARD, Management, screenshot

pytestmark = pytest.mark.e2e


def row_of(page: Any, instance_id: str) -> Any:
    return page.locator(
        "table.instances tbody tr", has=page.get_by_role("link", name=instance_id, exact=True)
    )


def open_instance(open_page: Any, host: HostProcess, instance_id: str) -> tuple[Any, Any]:
    page, log = open_page(f"{host.url}{DASHBOARD}#/instance/{instance_id}")
    expect(page.get_by_role("heading", name=re.compile("^Instance"))).to_contain_text(instance_id)
    return page, log


def confirm(page: Any, button: str, fields: dict[str, str] | None = None) -> None:
    """Click an action button, fill the confirmation dialog, confirm."""
    page.get_by_role("button", name=button, exact=True).click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    for label, value in (fields or {}).items():
        dialog.get_by_label(label, exact=True).fill(value)
    dialog.get_by_role("button", name=button, exact=True).click()
    expect(dialog).to_be_hidden()


def test_list_shows_counts_filters_and_pages(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    sequences = [management.start("hello_sequence", instance_id=f"list-seq-{n}") for n in range(3)]
    failed = management.start("failing", instance_id="list-fail-1")
    for instance_id in [*sequences, failed]:
        management.wait_for(instance_id)

    page, _ = open_page(f"{host.url}{DASHBOARD}")
    for instance_id in [*sequences, failed]:
        expect(row_of(page, instance_id)).to_be_visible()
    expect(row_of(page, failed)).to_contain_text("Failed")
    expect(row_of(page, sequences[0])).to_contain_text("hello_sequence")
    failed_chip = page.locator(".counts button[data-status=Failed]")
    expect(failed_chip).to_contain_text(re.compile(r"Failed \d+"))
    screenshot(page, "instances")

    # Status, by the chip and by the form.
    failed_chip.click()
    expect(row_of(page, failed)).to_be_visible()
    expect(row_of(page, sequences[0])).to_have_count(0)
    page.get_by_label("Status", exact=True).select_option("Completed")
    page.get_by_role("button", name="Apply filters").click()
    expect(row_of(page, sequences[0])).to_be_visible()
    expect(row_of(page, failed)).to_have_count(0)

    # Orchestrator name (the dashboard's own listing) and id prefix.
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Orchestrator", exact=True).first.select_option("failing")
    page.get_by_role("button", name="Apply filters").click()
    expect(row_of(page, failed)).to_be_visible()
    expect(row_of(page, sequences[1])).to_have_count(0)
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Instance id prefix").fill("list-seq-")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.locator("table.instances tbody tr")).to_have_count(3)
    expect(page.locator(".counts button[data-status=all]")).to_contain_text("All 3")

    # Created-time range: nothing was created before 2001.
    page.get_by_role("button", name="Clear filters").click()
    page.get_by_label("Created to").fill("2001-01-01T00:00:00")
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text("No instances match.")).to_be_visible()

    # Two per page: the continuation token pages through the three, forward and back.
    page.goto(f"{host.url}{DASHBOARD}#/instances?prefix=list-seq-&size=2")
    rows = page.locator("table.instances tbody tr")
    expect(rows).to_have_count(2)
    first_page = rows.all_inner_texts()
    page.get_by_role("button", name="Next page").click()
    expect(page.get_by_text("Page 2")).to_be_visible()
    expect(rows).to_have_count(1)
    expect(page.get_by_role("button", name="Next page")).to_be_disabled()
    page.get_by_role("button", name="Previous page").click()
    expect(rows).to_have_count(2)
    assert rows.all_inner_texts() == first_page


def test_a_new_instance_appears_without_a_reload(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    page, _ = open_page(f"{host.url}{DASHBOARD}")
    expect(page.locator("table.instances")).to_be_visible()
    page.evaluate("window.sameDocument = true")
    instance_id = management.start("approval", instance_id="live-approval")
    row = row_of(page, instance_id)
    expect(row).to_be_visible()
    # The custom status's fraction shows as a progress bar.
    expect(row.locator("progress")).to_have_attribute("value", "60")
    expect(row).to_contain_text("60%")
    assert page.evaluate("window.sameDocument") is True


def test_an_instance_shows_history_timeline_and_its_sub_orchestration(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    parent = management.start("parent", instance_id="tree-parent")
    management.wait_for(parent)
    page, _ = open_instance(open_page, host, parent)
    expect(page.locator("dl.facts")).to_contain_text("Completed")
    history = page.locator("table.history tbody")
    for event in (
        "ExecutionStarted",
        "TimerFired",
        "SubOrchestrationInstanceCompleted",
        "ExecutionCompleted",
    ):
        expect(history).to_contain_text(event)
    timeline = page.get_by_role("list", name="Timeline")
    expect(timeline.locator("li[data-kind=orchestration]")).to_have_count(1)
    expect(timeline.locator("li[data-kind=timer]")).to_have_count(1)
    expect(timeline.locator("li[data-kind=suborchestration]")).to_contain_text("hello_sequence")
    output = page.locator("details[data-key=output]")
    expect(output).to_contain_text("Hello Tokyo!")
    screenshot(page, "instance")

    # Parent -> child -> parent.
    page.locator("dl.facts").get_by_role("link", name="tree-parent-child").click()
    expect(page.get_by_role("heading", name=re.compile("^Instance"))).to_contain_text(
        "tree-parent-child"
    )
    expect(
        page.get_by_role("list", name="Timeline").locator("li[data-kind=activity]")
    ).to_have_count(3)
    page.get_by_role("link", name="tree-parent", exact=True).click()
    expect(page.get_by_role("heading", name=re.compile("^Instance"))).to_contain_text("tree-parent")


def test_raise_event_with_confirmation_completes_the_instance(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    instance_id = management.start("approval", instance_id="act-raise")
    management.wait_for(instance_id, {"Running"})
    page, _ = open_instance(open_page, host, instance_id)

    # Canceling the dialog sends nothing.
    page.get_by_role("button", name="Raise event", exact=True).click()
    page.get_by_role("dialog").get_by_role("button", name="Cancel").click()
    expect(page.locator("#action-result")).to_contain_text("canceled")
    assert management.status(instance_id)["runtimeStatus"] == "Running"  # type: ignore[index]

    page.get_by_role("button", name="Raise event", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Event name").fill("Approval")
    dialog.get_by_label("Event data").fill("not json")
    screenshot(page, "raise-event")
    dialog.get_by_role("button", name="Raise event").click()
    expect(dialog.get_by_role("alert")).to_contain_text("not JSON")
    dialog.get_by_label("Event data").fill('{"approved": true, "by": "dashboard"}')
    dialog.get_by_role("button", name="Raise event").click()
    expect(page.locator("#action-result")).to_contain_text("Approval delivered")
    status = management.wait_for(instance_id)
    assert status["output"] == {"approval": {"approved": True, "by": "dashboard"}}
    expect(page.locator("dl.facts")).to_contain_text("Completed")


def test_suspend_resume_terminate_restart_and_purge(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    instance_id = management.start("approval", instance_id="act-lifecycle")
    management.wait_for(instance_id, {"Running"})
    page, _ = open_instance(open_page, host, instance_id)

    confirm(page, "Suspend", {"Reason (optional)": "a pause"})
    management.wait_for(instance_id, {"Suspended"})
    expect(page.locator("dl.facts")).to_contain_text("Suspended")
    confirm(page, "Resume")
    management.wait_for(instance_id, {"Running"})
    expect(page.locator("dl.facts")).to_contain_text("Running")

    # Keyboard only: the button is reachable and the dialog confirms with Enter.
    page.get_by_role("button", name="Terminate", exact=True).focus()
    page.keyboard.press("Enter")
    page.get_by_role("dialog").get_by_label("Reason (optional)").fill("stopped from the dashboard")
    page.keyboard.press("Enter")
    status = management.wait_for(instance_id, {"Terminated"})
    assert status["output"] == "stopped from the dashboard"
    expect(page.locator("dl.facts")).to_contain_text("Terminated")

    confirm(page, "Restart")
    restarted = page.locator("#action-result").get_by_role("link")
    expect(restarted).to_be_visible()
    new_id = restarted.inner_text()
    assert new_id != instance_id
    management.wait_for(new_id, {"Running"})

    confirm(page, "Purge")
    expect(page.locator("#action-result")).to_contain_text("1 instance deleted")
    assert management.status(instance_id) is None


def test_rewind_runs_a_failed_instance_again(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    instance_id = management.start("flaky", instance_id="act-rewind")
    management.wait_for(instance_id, {"Failed"})
    page, _ = open_instance(open_page, host, instance_id)
    confirm(page, "Rewind", {"Reason (optional)": "try again"})
    status = management.wait_for(instance_id, {"Completed"})
    assert status["output"] == "recovered act-rewind"
    expect(page.locator("dl.facts")).to_contain_text("Completed")


def test_a_failed_instance_shows_its_failure(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    instance_id = management.start("failing", instance_id="failure-details")
    management.wait_for(instance_id)
    page, _ = open_instance(open_page, host, instance_id)
    failure = page.locator("details[data-key=failure]")
    expect(failure).to_have_attribute("open", "")
    expect(failure).to_contain_text("the orchestrator gave up")
    expect(page.get_by_role("button", name="Rewind", exact=True)).to_be_enabled()
    expect(page.get_by_role("button", name="Terminate", exact=True)).to_be_disabled()
    screenshot(page, "failed")


def test_start_a_new_instance_from_the_functions_page(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    page, _ = open_page(f"{host.url}{DASHBOARD}#/functions")
    table = page.locator("table.functions")
    expect(table).to_contain_text("http_start")
    http_row = table.locator("tr", has=page.get_by_text("http_start", exact=True))
    expect(http_row).to_contain_text("httpTrigger")
    expect(http_row).to_contain_text("/api/start/{functionName}")
    expect(http_row.get_by_role("link")).to_have_attribute(
        "href", f"{host.url}/api/start/{{functionName}}"
    )
    for name, trigger in [("hello", "activityTrigger"), ("parent", "orchestrationTrigger")]:
        expect(table.locator("tr", has=page.get_by_text(name, exact=True))).to_contain_text(trigger)
    screenshot(page, "functions")

    page.get_by_role("link", name="Start hello_sequence").click()
    expect(page.get_by_label("Orchestrator", exact=True).last).to_have_value("hello_sequence")
    page.get_by_label("Instance id (optional)").fill("started-from-page")
    page.get_by_label("Input (JSON, optional)").fill('{"from": "the page"}')
    page.get_by_role("button", name="Start", exact=True).click()
    expect(page.get_by_role("link", name="started-from-page", exact=True).first).to_be_visible()
    status = management.wait_for("started-from-page")
    assert status["input"] == {"from": "the page"}


def test_errors_from_the_host_are_shown(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    page, log = open_page(f"{host.url}{DASHBOARD}#/instance/no-such-instance", expect_errors=True)
    expect(page.get_by_role("alert")).to_contain_text("404")
    expect(page.get_by_role("alert")).to_contain_text("no-such-instance")

    # An action the host refuses: the page says why.
    instance_id = management.start("hello_sequence", instance_id="refused-action")
    management.wait_for(instance_id)
    page.goto(f"{host.url}{DASHBOARD}#/instance/refused-action")
    expect(page.locator("dl.facts")).to_contain_text("Completed")
    # A page that is behind the host (another tab ended the instance) still offers the
    # button: enable it as such a page would have it.
    page.evaluate(
        "[...document.querySelectorAll('.actions button')].forEach((b) => (b.disabled = false))"
    )
    confirm(page, "Terminate")
    expect(page.locator("#action-result")).to_contain_text("Terminate failed: 410")
    assert any("410" in message for message in log.console_errors)


def test_narrow_window_keeps_everything_reachable(
    open_page: Any, host: HostProcess, management: Management
) -> None:
    management.wait_for(management.start("parent", instance_id="narrow-parent"))
    page, _ = open_page(f"{host.url}{DASHBOARD}#/instance/narrow-parent", viewport=(390, 800))
    expect(page.get_by_role("list", name="Timeline")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    page.goto(f"{host.url}{DASHBOARD}#/instances")
    expect(page.get_by_role("button", name="Apply filters")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")

// One instance: its status, input/output/custom status/failure, history, timeline,
// parent and sub-orchestrations, and the actions of the management API.

import { DASHBOARD_API, call, instancePath } from "./api.js";
import { h, instanceHref, pretty, progressElement, progressOf, replaceChildren, statusBadge, timeElement, formatDuration } from "./dom.js";
import { timelineElement } from "./timeline.js";

const ACTIVE = new Set(["Pending", "Running", "Suspended"]);
const TERMINAL = new Set(["Completed", "Failed", "Terminated", "Canceled"]);

function jsonBlock(key, title, value, open) {
  return h("details", { className: "json", "data-key": key, open },
    h("summary", {}, title),
    h("pre", {}, value === null || value === undefined ? "null" : pretty(value)));
}

function failureOf(status) {
  const events = status.historyEvents || [];
  const failed = events.find((event) => event.EventType === "ExecutionFailed" || (event.EventType === "ExecutionCompleted" && event.OrchestrationStatus === "Failed"));
  if (!failed) return status.runtimeStatus === "Failed" ? { output: status.output } : null;
  return { reason: failed.Reason, details: failed.Details, output: status.output };
}

const SHOWN = new Set(["EventType", "Timestamp", "ScheduledTime", "FunctionName", "Name", "InstanceId"]);

function historyRow(event, index) {
  const extra = Object.fromEntries(Object.entries(event).filter(([name]) => !SHOWN.has(name)));
  const took = event.ScheduledTime ? Date.parse(event.Timestamp) - Date.parse(event.ScheduledTime) : NaN;
  const failed = /Failed$/.test(event.EventType) || event.OrchestrationStatus === "Failed";
  return h("tr", { className: failed ? "failed" : null },
    h("td", {}, String(index + 1)),
    h("td", {}, event.EventType),
    h("td", {}, event.FunctionName || event.Name || "",
      event.InstanceId ? [" ", h("a", { href: instanceHref(event.InstanceId) }, event.InstanceId)] : ""),
    h("td", {}, timeElement(event.Timestamp)),
    h("td", {}, Number.isFinite(took) ? formatDuration(took) : ""),
    h("td", {}, Object.keys(extra).length
      ? h("details", { "data-key": `history-${index}` }, h("summary", {}, Object.keys(extra).join(", ")), h("pre", {}, pretty(extra)))
      : ""),
  );
}

export async function renderInstance(main, id, context) {
  let status = null;
  let parent = null;
  let shown = "";
  let gone = false;
  const body = h("div", { className: "instance-body" });
  const result = h("div", { className: "result", "aria-live": "polite", id: "action-result" });
  const heading = h("h2", {}, "Instance ", h("span", { className: "id" }, id));
  const buttons = {};

  async function load() {
    const { data } = await call("GET", instancePath(id), {
      query: { showHistory: "true", showHistoryOutput: "true", showInput: "true" },
    });
    return data;
  }

  function say(text, problem = false, ...extra) {
    replaceChildren(result, h("p", { className: problem ? "problem" : "ok", role: problem ? "alert" : null }, text, ...extra));
  }

  function enableButtons() {
    const state = status.runtimeStatus;
    buttons.raise.disabled = !ACTIVE.has(state);
    buttons.terminate.disabled = !ACTIVE.has(state);
    buttons.suspend.disabled = !(state === "Running" || state === "Pending");
    buttons.resume.disabled = state !== "Suspended";
    buttons.rewind.disabled = state !== "Failed";
    buttons.purge.disabled = !TERMINAL.has(state);
    buttons.restart.disabled = false;
  }

  function draw() {
    const open = new Set([...body.querySelectorAll("details[data-key]")].filter((d) => d.open).map((d) => d.dataset.key));
    const wasOpen = (key, fallback) => (shown ? open.has(key) : fallback);
    const history = status.historyEvents || [];
    const children = history.filter((event) => event.InstanceId && event.EventType.startsWith("SubOrchestration"));
    const fraction = progressOf(status.customStatus);
    const failure = failureOf(status);
    replaceChildren(body,
      h("dl", { className: "facts" },
        h("dt", {}, "Name"), h("dd", {}, status.name),
        h("dt", {}, "Instance id"), h("dd", { className: "id" }, status.instanceId),
        h("dt", {}, "Status"), h("dd", {}, statusBadge(status.runtimeStatus)),
        h("dt", {}, "Created"), h("dd", {}, timeElement(status.createdTime)),
        h("dt", {}, "Updated"), h("dd", {}, timeElement(status.lastUpdatedTime)),
        fraction === null ? null : [h("dt", {}, "Progress"), h("dd", {}, progressElement(fraction, "Progress"))],
        parent ? [h("dt", {}, "Parent orchestration"), h("dd", {}, h("a", { href: instanceHref(parent), className: "parent-link" }, parent))] : null,
        children.length ? [h("dt", {}, "Sub-orchestrations"), h("dd", {}, h("ul", { className: "children" },
          children.map((event) => h("li", {}, h("a", { href: instanceHref(event.InstanceId) }, event.InstanceId), ` (${event.FunctionName || event.Name})`))))] : null,
      ),
      h("section", { "aria-labelledby": "data-heading" },
        h("h3", { id: "data-heading" }, "Data"),
        failure ? h("details", { className: "json failure", "data-key": "failure", open: wasOpen("failure", true) },
          h("summary", {}, "Failure details"),
          h("pre", {}, [failure.reason, failure.details, failure.reason ? null : pretty(failure.output)].filter(Boolean).join("\n\n"))) : null,
        jsonBlock("input", "Input", status.input, wasOpen("input", false)),
        jsonBlock("output", "Output", status.output, wasOpen("output", TERMINAL.has(status.runtimeStatus) && !failure)),
        jsonBlock("custom", "Custom status", status.customStatus, wasOpen("custom", status.customStatus !== null)),
      ),
      h("section", { "aria-labelledby": "timeline-heading" },
        h("h3", { id: "timeline-heading" }, "Timeline"),
        timelineElement(status, history)),
      h("section", { "aria-labelledby": "history-heading" },
        h("h3", { id: "history-heading" }, "History"),
        h("div", { className: "table-wrap" }, h("table", { className: "history" },
          h("caption", {}, `${history.length} events`),
          h("thead", {}, h("tr", {}, ["#", "Event", "Name", "Timestamp", "Took", "Details"].map((label) => h("th", { scope: "col" }, label)))),
          h("tbody", {}, history.map(historyRow))))),
    );
    for (const element of body.querySelectorAll("details[data-key]")) {
      if (open.has(element.dataset.key)) element.open = true;
    }
    enableButtons();
  }

  async function refresh() {
    if (gone) return;
    const data = await load();
    if (!context.isCurrent()) return;
    status = data;
    const fingerprint = JSON.stringify([data.runtimeStatus, data.lastUpdatedTime, data.customStatus, (data.historyEvents || []).length]);
    // A running instance's timeline grows with the clock; a finished one only on change.
    if (fingerprint !== shown || ACTIVE.has(data.runtimeStatus)) {
      draw();
      shown = fingerprint;
    }
  }

  const reasonField = { name: "reason", label: "Reason (optional)" };

  async function act(label, options, perform) {
    const values = await context.confirmAction({ title: label, confirmLabel: label, ...options });
    if (values === null) {
      say(`${label}: canceled, nothing was sent.`);
      return;
    }
    try {
      await perform(values);
      await refresh().catch(() => {});
    } catch (error) {
      say(`${label} failed: ${error.describe ? error.describe() : error.message}`, true);
    }
  }

  const operation = (name, label, text) => () => act(label, { text, fields: [reasonField] }, async (values) => {
    const answer = await call("POST", instancePath(id, name), { query: { reason: values.reason } });
    say(`${label}: the host accepted it (${answer.status}).`);
  });

  buttons.raise = h("button", { type: "button", onclick: () => act("Raise event", {
    text: `Send an external event to ${id}.`,
    fields: [
      { name: "eventName", label: "Event name", required: true },
      { name: "eventData", label: "Event data", type: "textarea", value: "null", hint: "JSON, sent as the event's data" },
      reasonField,
    ],
    check: (values) => {
      if (!values.eventName.trim()) return "Give the event a name.";
      try {
        JSON.parse(values.eventData.trim() || "null");
      } catch (error) {
        return `Event data is not JSON: ${error.message}`;
      }
      return null;
    },
  }, async (values) => {
    const answer = await call("POST", instancePath(id, "raiseEvent", values.eventName.trim()), {
      body: values.eventData.trim() || "null",
      headers: { "Content-Type": "application/json" },
    });
    say(`Raise event: ${values.eventName.trim()} delivered (${answer.status}).`);
  }) }, "Raise event");
  buttons.terminate = h("button", { type: "button", className: "danger", onclick: operation("terminate", "Terminate", `Terminate ${id}? It stops for good.`) }, "Terminate");
  buttons.suspend = h("button", { type: "button", onclick: operation("suspend", "Suspend", `Suspend ${id}? Events are held until it resumes.`) }, "Suspend");
  buttons.resume = h("button", { type: "button", onclick: operation("resume", "Resume", `Resume ${id}?`) }, "Resume");
  buttons.rewind = h("button", { type: "button", onclick: operation("rewind", "Rewind", `Rewind ${id}? Its failed steps run again.`) }, "Rewind");
  buttons.restart = h("button", { type: "button", onclick: () => act("Restart", {
    text: `Start ${id} again with its original input?`,
    fields: [{ name: "newId", label: "Restart with a new instance id", type: "checkbox", value: true }, reasonField],
  }, async (values) => {
    const answer = await call("POST", instancePath(id, "restart"), {
      query: { restartWithNewInstanceId: String(values.newId), reason: values.reason },
    });
    say("Restart: started ", false, h("a", { href: instanceHref(answer.data.id) }, answer.data.id));
  }) }, "Restart");
  buttons.purge = h("button", { type: "button", className: "danger", onclick: () => act("Purge", {
    text: `Purge ${id}? Its history and state are deleted for good.`,
    fields: [reasonField],
  }, async () => {
    const answer = await call("DELETE", instancePath(id));
    gone = true;
    say(`Purge: ${answer.data.instancesDeleted} instance deleted. `, false, h("a", { href: "#/instances" }, "Back to the instances"));
    for (const button of Object.values(buttons)) button.disabled = true;
  }) }, "Purge");

  const [data, relations] = await Promise.all([
    load(),
    call("GET", `${DASHBOARD_API}/instances/${encodeURIComponent(id)}/relations`).then((answer) => answer.data),
  ]);
  status = data;
  parent = relations.parentInstanceId;
  replaceChildren(main,
    h("nav", { className: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/instances" }, "Instances"), " › ", h("span", { className: "id" }, id)),
    heading,
    h("div", { className: "actions", role: "group", "aria-label": "Actions" },
      buttons.raise, buttons.suspend, buttons.resume, buttons.terminate, buttons.rewind, buttons.restart, buttons.purge),
    result,
    body,
  );
  draw();
  shown = JSON.stringify([data.runtimeStatus, data.lastUpdatedTime, data.customStatus, (data.historyEvents || []).length]);
  return { refresh };
}


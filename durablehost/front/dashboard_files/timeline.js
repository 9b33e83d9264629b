// The timeline of one instance: where its time went, from its history (showHistory shape).
// Activities and sub-orchestrations span from scheduled to completed, timers from created
// to fired, an external event's wait from the event before it to its arrival.

import { h, formatDuration, instanceHref } from "./dom.js";

const ACTIVE = new Set(["Pending", "Running", "Suspended"]);

export function timelineSpans(status, history, now) {
  const at = (iso) => Date.parse(iso);
  // The status times are whole seconds; the history's are finer: prefer them.
  const stamps = history.map((event) => at(event.Timestamp)).filter(Number.isFinite);
  const start = stamps.length ? Math.min(...stamps) : at(status.createdTime);
  const active = ACTIVE.has(status.runtimeStatus);
  const last = stamps.length ? Math.max(...stamps) : at(status.lastUpdatedTime);
  const end = active ? Math.max(now, last) : last;
  const spans = [{ label: status.name, kind: "orchestration", start, end, pending: active }];
  const timers = new Map();
  let previous = start;
  let suspendedAt = null;
  for (const event of history) {
    const moment = at(event.Timestamp);
    switch (event.EventType) {
      case "TaskCompleted":
      case "TaskFailed":
        spans.push({ label: event.FunctionName, kind: "activity", start: at(event.ScheduledTime || event.Timestamp), end: moment, failed: event.EventType === "TaskFailed" });
        break;
      case "TaskScheduled":
        spans.push({ label: event.Name, kind: "activity", start: moment, end, pending: active });
        break;
      case "SubOrchestrationInstanceCompleted":
      case "SubOrchestrationInstanceFailed":
        spans.push({ label: event.FunctionName, kind: "suborchestration", start: at(event.ScheduledTime || event.Timestamp), end: moment, failed: event.EventType.endsWith("Failed"), instanceId: event.InstanceId });
        break;
      case "SubOrchestrationInstanceCreated":
        spans.push({ label: event.Name, kind: "suborchestration", start: moment, end, pending: active, instanceId: event.InstanceId });
        break;
      case "TimerCreated": {
        const fireAt = at(event.FireAt);
        const span = { label: "Timer", kind: "timer", start: moment, end: Number.isFinite(fireAt) ? fireAt : end, pending: true };
        timers.set(event.FireAt, span);
        spans.push(span);
        break;
      }
      case "TimerFired": {
        const span = timers.get(event.FireAt);
        if (span) {
          span.end = moment;
          span.pending = false;
        }
        break;
      }
      case "EventRaised":
        spans.push({ label: `Wait for ${event.Name}`, kind: "wait", start: previous, end: moment });
        break;
      case "ExecutionSuspended":
        suspendedAt = moment;
        break;
      case "ExecutionResumed":
        if (suspendedAt !== null) spans.push({ label: "Suspended", kind: "suspended", start: suspendedAt, end: moment });
        suspendedAt = null;
        break;
      default:
        break;
    }
    if (Number.isFinite(moment)) previous = moment;
  }
  if (suspendedAt !== null) spans.push({ label: "Suspended", kind: "suspended", start: suspendedAt, end, pending: true });
  return spans.filter((span) => Number.isFinite(span.start) && Number.isFinite(span.end));
}

export function timelineElement(status, history, now = Date.now()) {
  const spans = timelineSpans(status, history, now);
  const origin = Math.min(...spans.map((span) => span.start));
  const finish = Math.max(...spans.map((span) => span.end));
  const total = Math.max(1, finish - origin);
  const items = spans.map((span) => {
    const left = ((span.start - origin) / total) * 100;
    const width = Math.max(0.5, ((span.end - span.start) / total) * 100);
    const duration = formatDuration(span.end - span.start);
    const offset = formatDuration(span.start - origin);
    const bar = h("span", { className: "bar", title: `${span.label}: ${duration}${span.pending ? " so far" : ""}` });
    bar.style.left = `${Math.min(left, 99.5)}%`;
    bar.style.width = `${Math.min(width, 100 - Math.min(left, 99.5))}%`;
    const classes = ["span", `kind-${span.kind}`, span.failed ? "failed" : "", span.pending ? "pending" : ""].filter(Boolean).join(" ");
    const label = span.instanceId ? h("a", { href: instanceHref(span.instanceId) }, span.label) : span.label;
    return h("li", { className: classes, "data-kind": span.kind },
      h("span", { className: "span-label" }, h("span", { className: "kind" }, span.kind), " ", label),
      h("span", { className: "track", "aria-hidden": "true" }, bar),
      h("span", { className: "span-time" }, `at +${offset || "0 ms"}, ${duration}${span.pending ? " so far" : ""}${span.failed ? ", failed" : ""}`));
  });
  return h("div", { className: "timeline-box" },
    h("p", { className: "axis" }, `From ${new Date(origin).toLocaleTimeString()} over ${formatDuration(total)}`),
    h("ol", { className: "timeline", "aria-label": "Timeline" }, items));
}

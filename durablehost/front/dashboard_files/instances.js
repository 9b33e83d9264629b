// The instance list: counts per status, filters, paging by continuation token, a form
// to start an orchestration; refreshed in place by the shell's polling.

import { DASHBOARD_API, MANAGEMENT, call } from "./api.js";
import { h, instanceHref, pretty, progressElement, progressOf, replaceChildren, statusBadge, timeElement } from "./dom.js";

export const STATUSES = ["Pending", "Running", "Suspended", "Completed", "Failed", "Terminated", "ContinuedAsNew", "Canceled"];
const PAGE_SIZES = ["20", "50", "100"];

function toIso(localValue) {
  if (!localValue) return "";
  const moment = new Date(localValue);
  return Number.isNaN(moment.getTime()) ? "" : moment.toISOString();
}

export async function orchestratorNames() {
  const { data } = await call("GET", `${DASHBOARD_API}/functions`);
  return data.filter((row) => row.trigger === "orchestrationTrigger").map((row) => row.name).sort();
}

function filterQuery(filters) {
  return {
    runtimeStatus: filters.status,
    instanceIdPrefix: filters.prefix,
    createdTimeFrom: toIso(filters.from),
    createdTimeTo: toIso(filters.to),
    name: filters.name,
  };
}

async function loadPage(filters, token) {
  const query = { ...filterQuery(filters), top: filters.size, showInput: "false" };
  // The management API lists every filter but the orchestrator name; the dashboard's
  // own listing adds it.
  let path = `${MANAGEMENT}/instances`;
  if (filters.name) path = `${DASHBOARD_API}/instances`;
  else delete query.name;
  const headers = token ? { "x-ms-continuation-token": token } : {};
  const { data, headers: answered } = await call("GET", path, { query, headers });
  return { instances: data, next: answered.get("x-ms-continuation-token") };
}

async function loadCounts(filters) {
  const query = filterQuery(filters);
  delete query.runtimeStatus;
  const { data } = await call("GET", `${DASHBOARD_API}/summary`, { query });
  return data;
}

function field(id, label, control) {
  return h("div", { className: "field" }, h("label", { for: id }, label), control);
}

function select(id, name, options, chosen, anyLabel) {
  const control = h("select", { id, name }, h("option", { value: "" }, anyLabel),
    options.map((option) => h("option", { value: option, selected: option === chosen }, option)));
  return control;
}

function row(instance) {
  const fraction = progressOf(instance.customStatus);
  const custom = instance.customStatus === null || instance.customStatus === undefined
    ? "" : typeof instance.customStatus === "string" ? instance.customStatus : pretty(instance.customStatus);
  return h("tr", {},
    h("td", {}, instance.name),
    h("td", { className: "id" }, h("a", { href: instanceHref(instance.instanceId) }, instance.instanceId)),
    h("td", {}, statusBadge(instance.runtimeStatus)),
    h("td", {}, timeElement(instance.createdTime)),
    h("td", {}, timeElement(instance.lastUpdatedTime)),
    h("td", { className: "custom" }, custom ? h("code", {}, custom) : ""),
    h("td", {}, fraction === null ? "" : progressElement(fraction, `Progress of ${instance.instanceId}`)),
  );
}

export async function renderInstances(main, params, context) {
  const filters = {
    status: params.get("status") || "",
    name: params.get("name") || "",
    prefix: params.get("prefix") || "",
    from: params.get("from") || "",
    to: params.get("to") || "",
    // Any whole number from the URL (tests page with 2); the form offers PAGE_SIZES.
    size: /^[1-9][0-9]{0,2}$/.test(params.get("size") || "") ? params.get("size") : "50",
  };
  const tokens = [null]; // the token of each page seen; the last is the page shown
  let next = null;
  let shownRows = "";
  let shownCounts = "";
  const [names, first, counts] = await Promise.all([
    orchestratorNames(), loadPage(filters, null), loadCounts(filters),
  ]);

  const countList = h("ul", { className: "counts", "aria-label": "Instances per status" });
  const tbody = h("tbody", {});
  const pageLabel = h("span", { className: "page-label" });
  const previous = h("button", { type: "button", onclick: () => turn(-1) }, "Previous page");
  const nextButton = h("button", { type: "button", onclick: () => turn(1) }, "Next page");
  const startResult = h("div", { className: "result", role: "status" });

  function setFilters(changes) {
    const merged = { ...filters, ...changes };
    const search = new URLSearchParams();
    for (const [name, value] of Object.entries(merged)) {
      if (value && !(name === "size" && value === "50")) search.set(name, value);
    }
    const text = search.toString();
    window.location.hash = text ? `#/instances?${text}` : "#/instances";
  }

  function drawCounts(summary) {
    const text = JSON.stringify(summary);
    if (text === shownCounts) return;
    shownCounts = text;
    const chip = (label, status, count) => h("li", {}, h("button", {
      type: "button",
      className: "chip",
      "aria-pressed": String(filters.status === status),
      "data-status": status || "all",
      onclick: () => setFilters({ status }),
    }, `${label} `, h("span", { className: "count" }, String(count))));
    replaceChildren(countList,
      chip("All", "", summary.total),
      STATUSES.filter((status) => summary.counts[status] || status === filters.status)
        .map((status) => chip(status, status, summary.counts[status] || 0)));
  }

  function drawRows(page) {
    next = page.next;
    previous.disabled = tokens.length <= 1;
    nextButton.disabled = !next;
    pageLabel.textContent = `Page ${tokens.length}`;
    const text = JSON.stringify(page.instances);
    if (text === shownRows) return;
    shownRows = text;
    if (page.instances.length === 0) {
      replaceChildren(tbody, h("tr", {}, h("td", { colspan: "7", className: "empty" }, "No instances match.")));
    } else {
      replaceChildren(tbody, page.instances.map(row));
    }
  }

  async function turn(step) {
    const target = step > 0 ? [...tokens, next] : tokens.slice(0, -1);
    const page = await loadPage(filters, target[target.length - 1]).catch((error) => {
      context.showError(error);
      return null;
    });
    if (!page || !context.isCurrent()) return;
    tokens.splice(0, tokens.length, ...target);
    drawRows(page);
  }

  const filterForm = h("form", { className: "filters", "aria-label": "Filters", onsubmit: (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    setFilters({
      status: data.get("status"), name: data.get("name"), prefix: data.get("prefix").trim(),
      from: data.get("from"), to: data.get("to"), size: data.get("size"),
    });
  } },
    field("filter-status", "Status", select("filter-status", "status", STATUSES, filters.status, "Any status")),
    field("filter-name", "Orchestrator", select("filter-name", "name", names, filters.name, "Any orchestrator")),
    field("filter-prefix", "Instance id prefix", h("input", { id: "filter-prefix", name: "prefix", type: "search", value: filters.prefix, autocomplete: "off" })),
    field("filter-from", "Created from", h("input", { id: "filter-from", name: "from", type: "datetime-local", step: "1", value: filters.from })),
    field("filter-to", "Created to", h("input", { id: "filter-to", name: "to", type: "datetime-local", step: "1", value: filters.to })),
    field("filter-size", "Per page", h("select", { id: "filter-size", name: "size" },
      [...new Set([...PAGE_SIZES, filters.size])].map((size) => h("option", { value: size, selected: size === filters.size }, size)))),
    h("div", { className: "buttons" },
      h("button", { type: "submit" }, "Apply filters"),
      h("button", { type: "button", onclick: () => { window.location.hash = "#/instances"; } }, "Clear filters")),
  );

  const startName = params.get("start") || "";
  const startForm = h("form", { className: "start", "aria-label": "Start a new instance", onsubmit: async (event) => {
    event.preventDefault();
    const data = new FormData(event.target);
    const input = String(data.get("input") || "").trim();
    if (input) {
      try {
        JSON.parse(input);
      } catch (error) {
        replaceChildren(startResult, h("p", { className: "problem" }, `Input is not JSON: ${error.message}`));
        return;
      }
    }
    const id = String(data.get("instanceId") || "").trim();
    const path = `${MANAGEMENT}/orchestrators/${encodeURIComponent(data.get("orchestrator"))}${id ? `/${encodeURIComponent(id)}` : ""}`;
    try {
      const { data: answer } = await call("POST", path, { body: input || undefined, headers: { "Content-Type": "application/json" } });
      replaceChildren(startResult, h("p", {}, "Started ", h("a", { href: instanceHref(answer.id) }, answer.id)));
      await refresh();
    } catch (error) {
      replaceChildren(startResult, h("p", { className: "problem" }, `Start failed: ${error.describe ? error.describe() : error.message}`));
    }
  } },
    field("start-orchestrator", "Orchestrator", h("select", { id: "start-orchestrator", name: "orchestrator", required: true },
      names.map((name) => h("option", { value: name, selected: name === startName }, name)))),
    field("start-id", "Instance id (optional)", h("input", { id: "start-id", name: "instanceId", type: "text", autocomplete: "off" })),
    field("start-input", "Input (JSON, optional)", h("textarea", { id: "start-input", name: "input", rows: "3" })),
    h("div", { className: "buttons" }, h("button", { type: "submit" }, "Start")),
    startResult,
  );

  async function refresh() {
    const token = tokens[tokens.length - 1];
    const [page, summary] = await Promise.all([loadPage(filters, token), loadCounts(filters)]);
    if (!context.isCurrent()) return;
    drawRows(page);
    drawCounts(summary);
  }

  replaceChildren(main,
    h("h2", {}, "Instances"),
    countList,
    filterForm,
    h("details", { className: "start-box", open: Boolean(startName) }, h("summary", {}, "Start a new instance"), startForm),
    h("div", { className: "table-wrap" },
      h("table", { className: "instances" },
        h("caption", {}, "Instances, newest first"),
        h("thead", {}, h("tr", {}, ["Name", "Instance id", "Status", "Created", "Updated", "Custom status", "Progress"].map((label) => h("th", { scope: "col" }, label)))),
        tbody)),
    h("nav", { className: "pager", "aria-label": "Pages" }, previous, pageLabel, nextButton),
  );
  drawRows(first);
  drawCounts(counts);
  return { refresh };
}

// The page's shell: hash routes, the error banner, the confirmation dialog and the
// polling that keeps the open view live (every 2 s while the tab is visible).

import { ApiError } from "./api.js";
import { h, replaceChildren } from "./dom.js";
import { renderFunctions } from "./functions.js";
import { renderInstance } from "./instance.js";
import { renderInstances } from "./instances.js";

const POLL_MILLISECONDS = 2000;
const main = document.getElementById("main");
const errorBanner = document.getElementById("error");
const live = document.getElementById("live");
let current = null; // { refresh, dispose } of the open view
let generation = 0; // bumped on every navigation: late answers of old views are dropped
let polling = false;

function describe(error) {
  if (error instanceof ApiError) return error.describe();
  return error && error.message ? error.message : String(error);
}

export function showError(error) {
  errorBanner.hidden = false;
  replaceChildren(errorBanner, h("strong", {}, "Error: "), describe(error));
}

export function clearError() {
  errorBanner.hidden = true;
  errorBanner.replaceChildren();
}

const dialog = document.getElementById("confirm");
const dialogFields = document.getElementById("confirm-fields");
const dialogProblem = document.getElementById("confirm-problem");

// Ask before an action: resolves with the fields' values, or null when canceled.
// `check(values)` may return a message that keeps the dialog open (e.g. bad JSON).
export function confirmAction({ title, text, fields = [], confirmLabel, check }) {
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-ok").textContent = confirmLabel || title;
  dialogProblem.hidden = true;
  const inputs = {};
  replaceChildren(
    dialogFields,
    fields.map((field) => {
      const id = `confirm-field-${field.name}`;
      let input;
      if (field.type === "textarea") {
        input = h("textarea", { id, name: field.name, rows: "4" });
        input.value = field.value || "";
      } else if (field.type === "checkbox") {
        input = h("input", { id, name: field.name, type: "checkbox", checked: Boolean(field.value) });
      } else {
        input = h("input", { id, name: field.name, type: "text", required: Boolean(field.required), autocomplete: "off" });
        input.value = field.value || "";
      }
      inputs[field.name] = input;
      const label = h("label", { for: id }, field.label);
      const hint = field.hint ? h("small", {}, field.hint) : null;
      return h("div", { className: field.type === "checkbox" ? "field check" : "field" },
        field.type === "checkbox" ? [input, label] : [label, input], hint);
    }),
  );
  return new Promise((resolve) => {
    const form = document.getElementById("confirm-form");
    const finish = (values) => {
      form.removeEventListener("submit", onSubmit);
      cancel.removeEventListener("click", onCancel);
      dialog.removeEventListener("cancel", onCancel);
      if (dialog.open) dialog.close();
      resolve(values);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const values = {};
      for (const [name, input] of Object.entries(inputs)) {
        values[name] = input.type === "checkbox" ? input.checked : input.value;
      }
      const problem = check ? check(values) : null;
      if (problem) {
        dialogProblem.textContent = problem;
        dialogProblem.hidden = false;
        return;
      }
      finish(values);
    };
    const onCancel = (event) => {
      event.preventDefault();
      finish(null);
    };
    const cancel = document.getElementById("confirm-cancel");
    form.addEventListener("submit", onSubmit);
    cancel.addEventListener("click", onCancel);
    dialog.addEventListener("cancel", onCancel);
    dialog.showModal();
    const first = Object.values(inputs)[0];
    (first || document.getElementById("confirm-ok")).focus();
  });
}

function route() {
  const hash = window.location.hash.replace(/^#/, "") || "/instances";
  const [path, search = ""] = hash.split("?");
  const params = new URLSearchParams(search);
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "instance" && parts.length >= 2) {
    return { view: "instance", id: decodeURIComponent(parts.slice(1).join("/")), params };
  }
  if (parts[0] === "functions") return { view: "functions", params };
  return { view: "instances", params };
}

async function navigate() {
  generation += 1;
  const mine = generation;
  if (current && current.dispose) current.dispose();
  current = null;
  clearError();
  const target = route();
  for (const link of document.querySelectorAll("nav[aria-label=Main] a")) {
    if (link.dataset.view === (target.view === "instance" ? "instances" : target.view)) {
      link.setAttribute("aria-current", "page");
    } else {
      link.removeAttribute("aria-current");
    }
  }
  const context = {
    showError,
    clearError,
    confirmAction,
    isCurrent: () => mine === generation,
  };
  replaceChildren(main, h("p", {}, "Loading…"));
  try {
    if (target.view === "instance") current = await renderInstance(main, target.id, context);
    else if (target.view === "functions") current = await renderFunctions(main, context);
    else current = await renderInstances(main, target.params, context);
    if (mine === generation) markLive();
  } catch (error) {
    if (mine === generation) showError(error);
  }
}

function markLive() {
  live.textContent = `Live · updated ${new Date().toLocaleTimeString()}`;
}

async function poll() {
  if (polling || document.hidden || !current || !current.refresh) return;
  polling = true;
  const mine = generation;
  try {
    await current.refresh();
    if (mine === generation) {
      clearError();
      markLive();
    }
  } catch (error) {
    if (mine === generation) {
      showError(error);
      live.textContent = "Not live: the last update failed";
    }
  } finally {
    polling = false;
  }
}

window.addEventListener("hashchange", navigate);
window.addEventListener("unhandledrejection", (event) => showError(event.reason));
document.addEventListener("visibilitychange", () => {
  if (!document.hidden) poll();
});
setInterval(poll, POLL_MILLISECONDS);
navigate();

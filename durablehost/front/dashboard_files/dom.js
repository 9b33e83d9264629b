// Small DOM helpers: elements are built from data with textContent, never innerHTML,
// so whatever an orchestration stores is shown as text.

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "className") element.className = value;
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

export function replaceChildren(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

export function instanceHref(id) {
  return `#/instance/${encodeURIComponent(id)}`;
}

export function formatTime(iso) {
  if (!iso) return "";
  const moment = new Date(iso);
  return Number.isNaN(moment.getTime()) ? iso : moment.toLocaleString();
}

export function timeElement(iso) {
  return iso ? h("time", { datetime: iso, title: iso }, formatTime(iso)) : "";
}

export function formatDuration(milliseconds) {
  if (!Number.isFinite(milliseconds) || milliseconds < 0) return "";
  if (milliseconds < 1000) return `${Math.round(milliseconds)} ms`;
  const seconds = milliseconds / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function pretty(value) {
  if (typeof value === "string") {
    // History inputs are raw JSON text: show them indented when they parse.
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

export function statusBadge(status) {
  return h("span", { className: `badge status-${String(status).toLowerCase()}` }, status);
}

// A progress fraction from a custom status like {"fraction": 0.6, ...}.
export function progressOf(customStatus) {
  if (!customStatus || typeof customStatus !== "object") return null;
  const fraction = Number(customStatus.fraction);
  return Number.isFinite(fraction) ? Math.min(1, Math.max(0, fraction)) : null;
}

export function progressElement(fraction, label) {
  const percent = Math.round(fraction * 100);
  return h(
    "span",
    { className: "progress" },
    h("progress", { max: "100", value: String(percent), "aria-label": label }),
    ` ${percent}%`,
  );
}

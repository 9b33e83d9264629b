// Calls to the host: the management API and the dashboard's own read-only endpoints.
// Every failure becomes an ApiError carrying what the host said (problem+json detail).

export const MANAGEMENT = "/runtime/webhooks/durabletask";
export const DASHBOARD_API = "/runtime/dashboard/api";
const KEY_STORAGE = "durablehost.dashboard.key";

// With --enforce-keys the page is opened with ?code=KEY (the banner prints that URL);
// the key is kept for the tab's session and sent with every call.
export const key = (() => {
  const given = new URLSearchParams(window.location.search).get("code");
  try {
    if (given) sessionStorage.setItem(KEY_STORAGE, given);
    return given || sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return given;
  }
})();

export class ApiError extends Error {
  constructor(status, title, detail) {
    super(detail);
    this.status = status;
    this.title = title;
  }

  describe() {
    return this.status ? `${this.status} ${this.title}: ${this.message}` : this.message;
  }
}

function problemText(data, fallback) {
  if (data && typeof data === "object") {
    return data.detail || data.message || data.ExceptionMessage || data.Message || fallback;
  }
  return typeof data === "string" && data.trim() ? data.trim().slice(0, 500) : fallback;
}

export async function call(method, path, { query = {}, body, headers = {} } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  const sent = { Accept: "application/json", ...headers };
  if (key) sent["x-functions-key"] = key;
  let response;
  try {
    response = await fetch(url, { method, headers: sent, body, cache: "no-store" });
  } catch (error) {
    throw new ApiError(0, "Unreachable", `The host at ${window.location.origin} did not answer (${error.message}). Is it still running?`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = text;
    }
  }
  if (!response.ok) {
    const title = (data && typeof data === "object" && data.title) || response.statusText || "Error";
    throw new ApiError(response.status, title, problemText(data, `the host answered ${response.status}`));
  }
  return { status: response.status, data, headers: response.headers };
}

export function instancePath(id, ...rest) {
  return [`${MANAGEMENT}/instances/${encodeURIComponent(id)}`, ...rest.map(encodeURIComponent)].join("/");
}

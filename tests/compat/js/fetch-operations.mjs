// Start a long-running operation with fetch and poll it to its result: the 202 + polling
// loop of the async request-reply pattern, with `redirect: "manual"` on the monitor so the
// 303 to the result is read, not followed blindly. Obeys Retry-After, has a deadline, and
// turns every answer >= 400 into an Error carrying the problem's `message`.
//
// Node's fetch (undici) hands back the real 303 with its Location under "manual"; a
// browser gives an opaque redirect instead (status 0), so there poll the
// `Operation-Location` status resource (`follow: "operation-location"`), which never
// redirects.

const RUNNING = new Set(["NotStarted", "Running"]);

/** An operation that ended without a result, or an error answer, with the server's words. */
export class OperationError extends Error {
  constructor(message, { status, operationStatus, problem } = {}) {
    super(message);
    this.name = "OperationError";
    this.status = status;
    this.operationStatus = operationStatus;
    this.problem = problem;
  }
}

/** Milliseconds a Retry-After header asks for (seconds or an HTTP date), else `fallbackMs`. */
export function retryAfterMs(value, fallbackMs = 1000) {
  if (!value) return fallbackMs;
  const seconds = Number(value);
  // A floor, so that `Retry-After: 0` does not become a busy loop.
  if (Number.isFinite(seconds)) return Math.max(seconds * 1000, 200);
  const date = Date.parse(value);
  return Number.isNaN(date) ? fallbackMs : Math.max(date - Date.now(), 200);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function failure(response) {
  const text = await response.text();
  let problem;
  try {
    problem = JSON.parse(text);
  } catch {
    problem = undefined;
  }
  const message =
    problem?.message ?? problem?.detail ?? problem?.title ?? `${response.url} answered ${response.status}`;
  return new OperationError(message, {
    status: response.status,
    operationStatus: problem?.operationStatus,
    problem,
  });
}

async function resultOf(fetchImpl, url, deadline) {
  const response = await fetchImpl(url, { signal: AbortSignal.timeout(Math.max(deadline - Date.now(), 1)) });
  if (response.status >= 400) throw await failure(response);
  const type = response.headers.get("content-type") ?? "";
  return type.includes("json") ? response.json() : response.text();
}

/** Poll `url` (the monitor, or a status resource) until the operation ends; its result. */
export async function waitForOperation(
  url,
  { timeoutMs = 300_000, firstWaitMs = 0, fetch: fetchImpl = globalThis.fetch } = {},
) {
  const deadline = Date.now() + timeoutMs;
  let waitMs = firstWaitMs;
  for (;;) {
    if (Date.now() + waitMs > deadline) {
      throw new OperationError(`operation ${url} still running after ${timeoutMs} ms`);
    }
    await sleep(waitMs);
    const response = await fetchImpl(url, {
      redirect: "manual",
      signal: AbortSignal.timeout(Math.max(deadline - Date.now(), 1)),
    });
    if (response.status === 302 || response.status === 303) {
      return resultOf(fetchImpl, new URL(response.headers.get("location"), url).href, deadline);
    }
    if (response.status >= 400) throw await failure(response);
    const body = await response.json();
    if (RUNNING.has(body.status)) {
      waitMs = retryAfterMs(response.headers.get("retry-after"));
      continue;
    }
    if (body.status === "Succeeded") {
      const result = new URL(body.resourceLocation ?? body.resultUri, url).href;
      return resultOf(fetchImpl, result, deadline);
    }
    if (body.status === "Failed" || body.status === "Canceled") {
      throw new OperationError(
        body.error?.message ?? `operation ${body.id} ended ${body.status.toLowerCase()}`,
        { status: response.status, operationStatus: body.status, problem: body.error },
      );
    }
    throw new OperationError(`${url} answered ${response.status} without an operation status`, {
      status: response.status,
    });
  }
}

/** POST `input` to `url`; a 202 is waited on (its `Location`, or `Operation-Location`). */
export async function runOperation(
  url,
  input,
  { timeoutMs = 300_000, follow = "location", fetch: fetchImpl = globalThis.fetch } = {},
) {
  const accepted = await fetchImpl(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(input),
  });
  if (accepted.status >= 400) throw await failure(accepted);
  if (accepted.status !== 202) return accepted.json();
  const monitor = new URL(accepted.headers.get(follow), url).href;
  return waitForOperation(monitor, {
    timeoutMs,
    firstWaitMs: retryAfterMs(accepted.headers.get("retry-after")),
    fetch: fetchImpl,
  });
}

// An axios instance that waits for long-running operations: a 202 Accepted resolves to
// the operation's final resource instead of the 202 itself. Written the way the
// async request-reply articles describe the client, plus what they leave out: Retry-After
// is obeyed, the whole wait has a deadline, and an answer >= 400 rejects with the
// server's own message (problem+json `message`, then `detail`, then `title`).
import axios from "axios";

const RUNNING = new Set(["NotStarted", "Running"]);
// Marks the requests the interceptor sends itself, so their answers are not waited on.
const POLL = Symbol("operation poll");

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
  if (value === undefined || value === null || value === "") return fallbackMs;
  const seconds = Number(value);
  // A floor, so that `Retry-After: 0` does not become a busy loop.
  if (Number.isFinite(seconds)) return Math.max(seconds * 1000, 200);
  const date = Date.parse(value);
  return Number.isNaN(date) ? fallbackMs : Math.max(date - Date.now(), 200);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function asOperationError(error) {
  if (error instanceof OperationError || !error.response) return error;
  const { status, data } = error.response;
  const problem = typeof data === "object" && data !== null ? data : undefined;
  const message =
    problem?.message ?? problem?.detail ?? problem?.title ?? `${error.config?.url} answered ${status}`;
  return new OperationError(message, {
    status,
    operationStatus: problem?.operationStatus,
    problem,
  });
}

/**
 * Poll `url` until the operation ends; resolve with the GET of its result.
 *
 * The poll reads the 303 itself (`maxRedirects: 0`) instead of letting axios follow it, so
 * a finished operation can never be mistaken for a status body. A status resource that
 * answers 200 with `status` words works too: Succeeded -> GET `resourceLocation`.
 */
export async function waitForOperation(client, url, { timeoutMs = 300_000, firstWaitMs = 0 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let waitMs = firstWaitMs;
  for (;;) {
    if (Date.now() + waitMs > deadline) {
      throw new OperationError(`operation ${url} still running after ${timeoutMs} ms`);
    }
    await sleep(waitMs);
    const poll = await client.get(url, {
      [POLL]: true,
      maxRedirects: 0,
      validateStatus: (status) => status >= 200 && status < 400,
      timeout: Math.max(deadline - Date.now(), 1),
    });
    if (poll.status === 302 || poll.status === 303) {
      return client.get(new URL(poll.headers.location, url).href, { [POLL]: true });
    }
    const body = poll.data ?? {};
    if (RUNNING.has(body.status)) {
      waitMs = retryAfterMs(poll.headers["retry-after"]);
      continue;
    }
    if (body.status === "Succeeded") {
      const result = body.resourceLocation ?? body.resultUri;
      return client.get(new URL(result, url).href, { [POLL]: true });
    }
    if (body.status === "Failed" || body.status === "Canceled") {
      const message =
        body.error?.message ?? `operation ${body.id} ended ${body.status.toLowerCase()}`;
      throw new OperationError(message, {
        status: poll.status,
        operationStatus: body.status,
        problem: body.error,
      });
    }
    throw new OperationError(`${url} answered ${poll.status} without an operation status`, {
      status: poll.status,
    });
  }
}

/**
 * Make `client` wait for operations: a 202 with `Location` (or, with
 * `follow: "operation-location"`, the `Operation-Location` status resource) resolves to the
 * final resource; every answer >= 400 rejects with an OperationError carrying its message.
 */
export function waitForOperations(client, { timeoutMs = 300_000, follow = "location" } = {}) {
  client.interceptors.response.use(
    (response) => {
      const url = response.headers[follow];
      if (response.status !== 202 || response.config[POLL] || !url) return response;
      const accepted = new URL(url, response.config.baseURL ?? response.config.url).href;
      return waitForOperation(client, accepted, {
        timeoutMs,
        firstWaitMs: retryAfterMs(response.headers["retry-after"]),
      });
    },
    (error) => Promise.reject(asOperationError(error)),
  );
  return client;
}

/** An axios instance for `baseURL` whose 202s resolve to the operation's result. */
export function createOperationsClient(baseURL, options = {}) {
  const { timeoutMs, follow, configure } = options;
  const client = axios.create({ baseURL, timeout: 30_000 });
  // Lets a caller add its own interceptors first (the tests record every answer).
  configure?.(client);
  return waitForOperations(client, { timeoutMs, follow });
}

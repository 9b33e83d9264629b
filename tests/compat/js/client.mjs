// Test harness around the two JavaScript clients (not part of what users copy): runs one
// operation and prints how it ended as one JSON object on stdout. On stderr, as they happen:
// `started <id>` when the 202 arrives, and `exchange <json>` for every HTTP answer the
// client saw (method, url, status, Retry-After, Location, the body's status word).
//
//   node client.mjs <axios|fetch> <location|operation-location> run <base-url> <kind> <input-json>
//   node client.mjs <axios|fetch> <location|operation-location> resume <polling-url>
//
// Exit code 0 when the operation's result arrived, 1 when the client raised.
import { createOperationsClient, waitForOperation as axiosWait } from "./axios-operations.mjs";
import { runOperation, waitForOperation as fetchWait } from "./fetch-operations.mjs";

const [library, follow, mode, ...rest] = process.argv.slice(2);
const timeoutMs = Number(process.env.COMPAT_TIMEOUT_MS ?? 60_000);

// `status` (operations API) or `runtimeStatus` (Durable Functions), when a string.
function statusWord(body) {
  if (typeof body !== "object" || body === null) return null;
  for (const word of [body.status, body.runtimeStatus]) if (typeof word === "string") return word;
  return null;
}

function record(method, url, status, headers, body) {
  const exchange = {
    method: method.toUpperCase(),
    url,
    status,
    retryAfter: headers.retryAfter ?? null,
    location: headers.location ?? null,
    bodyStatus: statusWord(body),
  };
  console.error(`exchange ${JSON.stringify(exchange)}`);
  if (status === 202 && method.toUpperCase() === "POST" && body?.id) {
    console.error(`started ${body.id}`);
  }
}

function recordAxios(response) {
  const { config, status, headers, data } = response;
  const url = new URL(config.url, config.baseURL).href;
  record(config.method, url, status, { retryAfter: headers["retry-after"], location: headers.location }, data);
}

async function recordingFetch(url, init = {}) {
  const response = await fetch(url, init);
  let body;
  try {
    body = JSON.parse(await response.clone().text());
  } catch {
    body = undefined;
  }
  record(init.method ?? "GET", String(url), response.status, {
    retryAfter: response.headers.get("retry-after") ?? undefined,
    location: response.headers.get("location") ?? undefined,
  }, body);
  return response;
}

async function main() {
  if (library === "axios") {
    const [baseUrl] = mode === "run" ? rest : [undefined];
    const client = createOperationsClient(baseUrl, {
      timeoutMs,
      follow,
      configure: (instance) =>
        instance.interceptors.response.use(
          (response) => (recordAxios(response), response),
          (error) => {
            if (error.response) recordAxios(error.response);
            return Promise.reject(error);
          },
        ),
    });
    if (mode === "run") {
      const [, kind, input] = rest;
      return (await client.post(`/api/operations/${kind}`, JSON.parse(input))).data;
    }
    return (await axiosWait(client, rest[0], { timeoutMs })).data;
  }
  if (library === "fetch") {
    if (mode === "run") {
      const [baseUrl, kind, input] = rest;
      const url = new URL(`/api/operations/${kind}`, baseUrl).href;
      return runOperation(url, JSON.parse(input), { timeoutMs, follow, fetch: recordingFetch });
    }
    return fetchWait(rest[0], { timeoutMs, fetch: recordingFetch });
  }
  throw new Error(`unknown library ${library}`);
}

try {
  const result = await main();
  console.log(JSON.stringify({ outcome: "succeeded", result }));
} catch (error) {
  const { name, message, status, operationStatus } = error;
  console.log(JSON.stringify({ outcome: "error", error: { name, message, status, operationStatus } }));
  process.exitCode = 1;
}

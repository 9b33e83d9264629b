// Every function of the app with its trigger, methods, route and URL.

import { DASHBOARD_API, call } from "./api.js";
import { h, replaceChildren } from "./dom.js";

export async function renderFunctions(main) {
  const { data } = await call("GET", `${DASHBOARD_API}/functions`);
  const rows = data.map((fn) => h("tr", {},
    h("td", {}, fn.name),
    h("td", {}, fn.trigger),
    h("td", {}, fn.methods || ""),
    h("td", {}, fn.route ? h("code", {}, fn.route) : ""),
    h("td", { className: "id" },
      fn.url ? h("a", { href: fn.url }, fn.url) : "",
      fn.trigger === "orchestrationTrigger"
        ? h("a", { href: `#/instances?start=${encodeURIComponent(fn.name)}`, className: "start-link" }, `Start ${fn.name}`)
        : ""),
  ));
  replaceChildren(main,
    h("h2", {}, "Functions"),
    h("div", { className: "table-wrap" },
      h("table", { className: "functions" },
        h("caption", {}, `${data.length} functions of the app`),
        h("thead", {}, h("tr", {}, ["Name", "Trigger", "Methods", "Route", "URL"].map((label) => h("th", { scope: "col" }, label)))),
        h("tbody", {}, rows))),
  );
  return {};
}

// Shared by the browser checks (check_page.mjs, viewer_check.mjs): headless Chromium
// through playwright-core, and what a page reports as going wrong.
//
// Chromium: the CHROMIUM environment variable, else Debian's /usr/bin/chromium.

import { chromium } from "playwright-core";

export function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
      "--disable-background-networking", "--disable-component-update", "--no-first-run",
      "--disable-sync"],
  });
}

// Records, as they happen, the console messages ({type, text}), uncaught page errors,
// failed requests and HTTP error responses (status >= 400) of `page`.
export function watch(page) {
  const seen = { console: [], pageErrors: [], failedRequests: [], httpErrors: [] };
  page.on("console", (msg) => seen.console.push({ type: msg.type(), text: msg.text() }));
  page.on("pageerror", (err) => seen.pageErrors.push(String(err)));
  page.on("requestfailed", (req) =>
    seen.failedRequests.push(`${req.url()} ${req.failure()?.errorText ?? ""}`.trim()));
  page.on("response", (res) => {
    if (res.status() >= 400) seen.httpErrors.push(`HTTP ${res.status()}: ${res.url()}`);
  });
  return seen;
}

// Everything `watch` saw that is a problem, one line each.
export function problems(seen) {
  return [
    ...seen.console.filter((m) => m.type === "error").map((m) => `console: ${m.text}`),
    ...seen.pageErrors.map((e) => `page error: ${e}`),
    ...seen.failedRequests.map((r) => `request failed: ${r}`),
    ...seen.httpErrors,
  ];
}

// The page's ONE live channel: the owner-wide stream GET /v1/events, read with fetch because
// EventSource cannot send the API key. One stream per job would hold one of the browser's six
// HTTP/1.1 connections to the server each, and with six jobs live every other request (a
// cancel, a refresh, a download) would wait behind them.
//
// The stream: `retry:` first, then `ready` (without Last-Event-ID), `status` events (the job's
// JSON) and `progress` events ({id, status, progress}), each with an `id:`; a dropped stream
// is reopened with Last-Event-ID so that missed changes are sent again (at least once: the
// store applies them idempotently). A server without /v1/events (404) is polled instead, one
// request at a time.

import { api, authHeaders, jobPath, KeyNeeded, unauthorized } from "./api.js";
import * as store from "./store.js";

const POLL_MS = 2000;
const MAX_BACKOFF_MS = 15000;

let controller = null;
let lastId = null;
let retryMs = 1000;
let listeners = { state: () => {}, ready: () => {} };

export function on(handlers) {
  listeners = { ...listeners, ...handlers };
}

export function start() {
  stop();
  lastId = null;
  controller = new AbortController();
  run(controller.signal);
}

export function stop() {
  if (controller) controller.abort();
  controller = null;
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => { clearTimeout(timer); resolve(); }, { once: true });
  });
}

async function run(signal) {
  let failures = 0;
  while (!signal.aborted) {
    listeners.state(failures ? "reconnecting" : "connecting");
    let response = null;
    try {
      const headers = { ...authHeaders(), Accept: "text/event-stream" };
      if (lastId !== null) headers["Last-Event-ID"] = lastId;
      response = await fetch("/v1/events", { headers, signal, cache: "no-store" });
    } catch {
      response = null; // offline, or the server is restarting
    }
    if (signal.aborted) return;
    if (response && response.status === 401) {
      listeners.state("offline");
      unauthorized();
      return;
    }
    if (response && (response.status === 404 || response.status === 405)) {
      await poll(signal);
      return;
    }
    if (response && response.status === 400 && lastId !== null) {
      lastId = null; // a cursor the server no longer knows: start afresh (`ready` reloads)
      continue;
    }
    if (response && response.ok) {
      failures = 0;
      listeners.state("live");
      try {
        await read(response.body, signal);
      } catch {
        // cut off: reconnect below
      }
      if (signal.aborted) return;
    }
    failures += 1;
    listeners.state("reconnecting");
    await sleep(Math.min(retryMs * 2 ** Math.max(0, failures - 1), MAX_BACKOFF_MS), signal);
  }
}

// Server-Sent Events, parsed as the HTML standard says: lines end in \n, \r\n or \r; a blank
// line dispatches; `data` lines join with \n; comments (`: keepalive`) are skipped.
async function read(body, signal) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}), { once: true });
  let buffer = "";
  let event = { type: "", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    // A \r at the end may be the first half of \r\n: it waits for the next chunk.
    const held = buffer.endsWith("\r") ? "\r" : "";
    const lines = (held ? buffer.slice(0, -1) : buffer).split(/\r\n|\r|\n/);
    buffer = lines.pop() + held; // the unfinished line
    for (const line of lines) {
      if (line === "") {
        if (event.id !== null) lastId = event.id;
        if (event.data.length) dispatch(event.type || "message", event.data.join("\n"));
        event = { type: "", data: [], id: null };
        continue;
      }
      if (line.startsWith(":")) continue;
      const at = line.indexOf(":");
      const field = at < 0 ? line : line.slice(0, at);
      const text = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
      if (field === "event") event.type = text;
      else if (field === "data") event.data.push(text);
      else if (field === "id" && !text.includes("\0")) event.id = text;
      else if (field === "retry" && /^\d+$/.test(text)) retryMs = Number(text);
    }
  }
}

function dispatch(type, data) {
  let body;
  try {
    body = JSON.parse(data);
  } catch {
    return; // not ours to show
  }
  if (type === "ready") listeners.ready();
  else if (type === "status") store.put(body);
  else if (type === "progress") store.progress(body);
}

// The fallback for servers without /v1/events: the newest jobs in one request, and the page's
// other unfinished jobs one by one, every two seconds; never more than one request at a time.
async function poll(signal) {
  listeners.state("polling");
  listeners.ready();
  while (!signal.aborted) {
    try {
      const { items } = await api("/v1/jobs?limit=100", { signal });
      const seen = new Set(items.map((job) => job.id));
      for (const job of items) store.put(job);
      for (const job of store.unfinished()) {
        if (seen.has(job.id) || signal.aborted) continue;
        try {
          store.put(await api(jobPath(job.id), { signal }));
        } catch (error) {
          if (error.code === "job_not_found") store.forget(job.id);
          else throw error;
        }
      }
    } catch (error) {
      if (error instanceof KeyNeeded) return;
    }
    await sleep(POLL_MS, signal);
  }
}

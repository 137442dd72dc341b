// The job panel at #/jobs/ID: a modal drawer (Escape or its Close button shuts it and gives
// the focus back) with the job's live progress, timeline, attempts, parameters, input and
// result, and its actions: download, copy a signed link, cancel, delete.

import { api, ApiError, isFinal, jobPath } from "./api.js";
import { askCancel, askDelete, downloadLink, jobName } from "./actions.js";
import { $, announce, element, progressBar, setBar } from "./dom.js";
import { bytes, clock, duration, humanizeBytes, percent, seconds } from "./format.js";
import * as store from "./store.js";

const panel = { id: null, parts: null, opener: null, attemptsFor: null };

function dl(rows) {
  return element("dl", { class: "facts" }, ...rows.flatMap(([term, value, className]) => [
    element("dt", { text: term }), element("dd", { class: className || null }, value ?? "–"),
  ]));
}

function section(title, ...children) {
  return element("section", { class: "part" }, element("h3", { text: title }), ...children);
}

function skeleton(job) {
  const parts = {
    status: element("span", { class: "status" }),
    bar: progressBar(`Progress of ${jobName(job)}`),
    progress: element("p", { class: "stats" }),
    error: element("p", { class: "error", hidden: true }),
    actions: element("div", { class: "actions" }),
    link: element("div", { class: "signed-link", hidden: true }),
    timeline: element("ol", { class: "timeline" }),
    attempts: element("div"),
    result: element("div"),
  };
  const close = element("button", {
    type: "button", class: "close", "aria-label": "Close job details", text: "✕", onclick: closePanel,
  });
  const params = Object.entries(job.params || {});
  $("#job-body").replaceChildren(
    element("header", { class: "drawer-head" },
      element("h2", { id: "job-title", text: jobName(job) }), parts.status, close),
    element("p", { class: "hint mono", text: `${job.processor} · ${job.id}` }),
    parts.bar, parts.progress, parts.error, parts.actions, parts.link,
    section("Timeline", parts.timeline),
    section("Attempts", parts.attempts),
    section("Parameters", params.length
      ? dl(params.map(([name, value]) => [name, JSON.stringify(value), "mono"]))
      : element("p", { class: "hint", text: "None: the processor's defaults." })),
    section("Input", dl([
      ["File", job.input.filename], ["Type", job.input.content_type],
      ["Size", bytes(job.input.size)], ["SHA-256", job.input.sha256, "mono hash"],
    ])),
    section("Result", parts.result),
    job.callback ? section("Webhook", dl([
      ["URL", job.callback.url, "mono"], ["State", job.callback.state || "not yet due"],
      ["Attempts", String(job.callback.attempts)], ["Last answer", job.callback.last_result],
    ])) : null,
  );
  return parts;
}

function timeline(job) {
  const queued = seconds(job.created_at, job.started_at);
  const ran = seconds(job.started_at, isFinal(job) ? job.finished_at : null);
  const steps = [
    ["Created", job.created_at, "uploaded and stored"],
    ["Started", job.started_at, job.started_at ? `after ${duration(queued)} in the queue` : "waiting for a worker"],
    [isFinal(job) ? `Finished: ${job.status}` : "Finished", job.finished_at,
      job.finished_at ? `ran ${duration(ran)}` : (job.started_at ? `running for ${duration(ran)}` : "")],
  ];
  return steps.map(([what, when, note]) => element("li", { "data-done": Boolean(when) },
    element("strong", { text: what }), " ",
    element("time", { datetime: when || null, text: when ? clock(when) : "not yet" }),
    note ? element("span", { class: "hint", text: note }) : null));
}

function resultPart(job) {
  if (job.result) {
    return dl([
      ["File", job.result.filename], ["Type", job.result.content_type],
      ["Size", bytes(job.result.size)], ["SHA-256", job.result.sha256, "mono hash"],
    ]);
  }
  const why = { queued: "Not yet: the job is waiting.", running: "Not yet: the job is running.",
    expired: "Removed: the job's files have expired." }[job.status] || "None.";
  return element("p", { class: "hint", text: why });
}

async function copyLink(job) {
  const box = panel.parts.link;
  try {
    const { url, expires_at: expires } = await api(`${jobPath(job.id)}/result-link`);
    const absolute = new URL(url, location.href).href;
    const input = element("input", { type: "text", readonly: true, value: absolute, "aria-label": "Signed link to the result" });
    let said = "Copied the link";
    try {
      await navigator.clipboard.writeText(absolute);
    } catch {
      said = "Select the link to copy it"; // no clipboard here (a page not served over HTTPS)
    }
    box.replaceChildren(input, element("p", { class: "hint", text: `${said}; it works without a key until ${clock(expires)}.` }));
    box.hidden = false;
    input.select();
    announce(`${said}.`);
  } catch (error) {
    box.replaceChildren(element("p", { class: "error", text: error.message }));
    box.hidden = false;
  }
}

function actions(job) {
  const buttons = [];
  if (job.status === "succeeded" && job.result) {
    buttons.push(downloadLink(job, { words: "name" }));
    buttons.push(element("button", { type: "button", text: "Copy signed link", onclick: () => copyLink(job) }));
  }
  if (!isFinal(job)) {
    buttons.push(element("button", { type: "button", class: "cancel", text: "Cancel job", onclick: () => askCancel(store.get(job.id) || job) }));
  } else {
    buttons.push(element("button", {
      type: "button", class: "delete", text: "Delete job",
      onclick: async () => { if (await askDelete(store.get(job.id) || job)) closePanel(); },
    }));
  }
  return buttons;
}

// Attempts from GET /v1/jobs/{id}/attempts; a server without that route: what the job says.
async function loadAttempts(job) {
  const key = `${job.id}:${job.status}:${job.attempts}`;
  if (panel.attemptsFor === key) return;
  panel.attemptsFor = key;
  let list;
  try {
    list = (await api(`${jobPath(job.id)}/attempts`)).items;
  } catch (error) {
    if (!(error instanceof ApiError && error.noRoute)) {
      panel.parts.attempts.replaceChildren(element("p", { class: "error", text: error.message }));
      return;
    }
    list = null;
  }
  if (panel.id !== job.id) return;
  panel.parts.attempts.replaceChildren(list ? attemptList(list) : attemptSummary(job));
}

function attemptList(list) {
  if (!list.length) return element("p", { class: "hint", text: "None yet." });
  return element("ol", { class: "attempts" }, ...list.map((a) => element("li", {},
    element("strong", { text: `Attempt ${a.number}` }), " ",
    element("span", { class: "outcome", "data-outcome": a.outcome || "running", text: a.outcome || "running" }),
    element("span", { class: "hint", text: `${clock(a.started_at)}${a.ended_at ? ` · ${duration(seconds(a.started_at, a.ended_at))}` : ""}` }),
    a.error ? element("p", { class: "error", text: humanizeBytes(`${a.error.message} (${a.error.code})`) }) : null)));
}

function attemptSummary(job) {
  const rows = [["Attempts", `${job.attempts} of at most ${job.max_attempts}`]];
  if (job.next_attempt_at) rows.push(["Next attempt", clock(job.next_attempt_at)]);
  if (job.error) rows.push(["Last error", humanizeBytes(`${job.error.message} (${job.error.code})`)]);
  return dl(rows);
}

function show(job) {
  const parts = panel.parts;
  parts.status.textContent = job.status;
  parts.status.dataset.status = job.status;
  const ran = seconds(job.started_at, isFinal(job) ? job.finished_at : null);
  const fraction = job.status === "succeeded" ? 1 : job.progress;
  const bar = { running: "process", succeeded: "done", failed: "error" }[job.status] || "idle";
  setBar(parts.bar, fraction, bar, percent(fraction));
  parts.progress.textContent = job.status === "queued" ? "Waiting for a worker"
    : `${percent(fraction)} · ${duration(ran)} ${isFinal(job) ? "in all" : "elapsed"}`;
  parts.error.hidden = !job.error;
  parts.error.textContent = job.error ? humanizeBytes(`${job.error.message} (${job.error.code})`) : "";
  parts.timeline.replaceChildren(...timeline(job));
  parts.result.replaceChildren(resultPart(job));
  const key = `${job.status}:${Boolean(job.result)}`;
  if (parts.actions.dataset.key !== key) {
    const focused = parts.actions.contains(document.activeElement);
    parts.actions.dataset.key = key;
    parts.actions.replaceChildren(...actions(job));
    if (focused) parts.actions.lastElementChild.focus();
  }
  loadAttempts(job);
}

async function openPanel(id) {
  const dialog = $("#job-panel");
  let job = store.get(id);
  try {
    job = await api(jobPath(id));
    store.put(job);
  } catch (error) {
    if (!job) {
      $("#job-body").replaceChildren(element("p", { class: "error", text: error.message }),
        element("button", { type: "button", text: "Close", onclick: closePanel }));
      if (!dialog.open) dialog.showModal();
      return;
    }
  }
  job = store.get(id) || job;
  panel.id = id;
  panel.attemptsFor = null;
  panel.parts = skeleton(job);
  show(job);
  if (!dialog.open) {
    panel.opener = document.activeElement;
    dialog.showModal();
  }
  $("#job-title").setAttribute("tabindex", "-1");
  $("#job-title").focus();
}

function closePanel() {
  const dialog = $("#job-panel");
  if (dialog.open) dialog.close();
}

function onClosed() {
  panel.id = null;
  // Closing is a step of its own in the history: Back opens the panel again.
  if (location.hash.startsWith("#/jobs/")) history.pushState(null, "", location.pathname + location.search);
  if (panel.opener && panel.opener.isConnected) panel.opener.focus();
  else $("#jobs-title").focus();
}

export function route() {
  const match = location.hash.match(/^#\/jobs\/([^/]+)$/);
  if (match) openPanel(decodeURIComponent(match[1]));
  else closePanel();
}

export function tick() {
  const job = panel.id && store.get(panel.id);
  if (job && job.status === "running") show(job);
}

export function init() {
  $("#job-panel").addEventListener("close", onClosed);
  window.addEventListener("hashchange", route);
  store.subscribe((job, previous) => {
    if (job.id !== panel.id || !panel.parts) return;
    if (job.deleted) {
      closePanel();
      return;
    }
    show(job);
    if (previous && previous.status !== job.status) announce(`${jobName(job)}: ${job.status}.`);
  });
}

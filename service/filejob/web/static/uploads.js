// Uploads: each file is its own job. A small file is one POST /v1/jobs, sent with
// XMLHttpRequest for its upload progress (fetch cannot report it without streaming request
// bodies), and can be aborted; a big one is a resumable tus upload (resumable.js), which can be
// paused, resumed (after a reload too: unfinished.js) and cancelled. Three at a time, like
// Uppy's default, so that the browser's six connections to the server leave room for the live
// channel and the page's other requests. A card shows the upload's %, bytes, speed, time left
// and time taken, then the job's progress from the live channel.

import { authHeaders, isFinal, parseProblem, unauthorized } from "./api.js";
import { actionButtons, actionsKey, downloadLink, jobName } from "./actions.js";
import { $, announce, element, progressBar, setBar } from "./dom.js";
import { bytes, duration, percent, rate, seconds } from "./format.js";
import * as resumable from "./resumable.js";
import * as store from "./store.js";
import * as unfinished from "./unfinished.js";

const AT_ONCE = 3;
const items = [];
let running = 0;

function makeCard(item) {
  const name = item.file.name;
  item.status = element("span", { class: "status", "data-status": "waiting", text: "waiting" });
  item.bar = progressBar(`Upload of ${name}`);
  item.stats = element("p", { class: "stats" });
  item.error = element("p", { class: "error", hidden: true });
  item.actions = element("div", { class: "actions" });
  item.card = element("li", { class: "card" },
    element("div", { class: "card-head" },
      element("strong", { class: "name", text: name }),
      element("span", { class: "size", text: bytes(item.file.size) }),
      item.status),
    item.bar, element("div", { class: "card-foot" }, item.stats, item.actions), item.error);
  $("#uploads").prepend(item.card);
  $("#uploads-empty").hidden = true;
}

function setStatus(item, status) {
  item.status.textContent = status;
  item.status.dataset.status = status;
  item.card.dataset.status = status;
}

function showError(item, text) {
  item.error.hidden = !text;
  item.error.textContent = text || "";
}

function button(item, words, className, onclick) {
  return element("button", {
    type: "button", class: className, text: words, "aria-label": `${words} upload of ${item.file.name}`, onclick,
  });
}

const abortButton = (item) => button(item, "Abort", "abort", () => abort(item));
const pauseButton = (item) => button(item, "Pause", "pause", () => pause(item));
const resumeButton = (item) => button(item, "Resume", "resume", () => resume(item));
const cancelButton = (item) => button(item, "Cancel", "abort", () => cancel(item));

// The figures count from here: the start, or where a resumed upload goes on.
function begin(item, loaded) {
  const now = performance.now();
  item.startedAt = now - (item.spent || 0); // time spent before a pause counts
  item.sampleAt = item.resumedAt = now;
  item.sampleLoaded = item.baseLoaded = loaded;
  item.speed = 0;
}

// Upload figures: speed is a moving average over the last few seconds, so that one slow
// chunk does not swing the time left.
function onProgress(item, loaded, total) {
  const now = performance.now();
  const dt = (now - item.sampleAt) / 1000;
  if (dt >= 0.25) {
    const instant = (loaded - item.sampleLoaded) / dt;
    item.speed = item.speed ? item.speed * 0.7 + instant * 0.3 : instant;
    item.sampleAt = now;
    item.sampleLoaded = loaded;
  }
  item.loaded = loaded;
  item.total = total;
  const elapsed = (now - item.startedAt) / 1000;
  const since = (now - item.resumedAt) / 1000;
  const speed = item.speed || (since > 0 ? (loaded - item.baseLoaded) / since : 0);
  const left = speed > 0 ? (total - loaded) / speed : null;
  const parts = [percent(loaded / total), `${bytes(loaded)} of ${bytes(total)}`, rate(speed)];
  if (loaded < total) parts.push(left === null ? "– left" : `${duration(left)} left`);
  parts.push(`${duration(elapsed)} elapsed`);
  if (item.resumedFrom) parts.push(`resumed at ${bytes(item.resumedFrom)}`);
  item.stats.textContent = parts.join(" · ");
  setBar(item.bar, loaded / total, "upload", `${percent(loaded / total)} uploaded`);
  if (loaded >= total) {
    setStatus(item, "checking");
    item.stats.textContent = `${bytes(total)} sent in ${duration(elapsed)} · the server is checking it`;
  }
}

function send(item) {
  running += 1;
  item.holdsSlot = true;
  begin(item, item.loaded);
  setStatus(item, "uploading");
  if (item.resumable) sendResumable(item);
  else sendForm(item);
}

// Gives the item's upload slot to the next file waiting, once.
function release(item) {
  if (!item.holdsSlot) return;
  item.holdsSlot = false;
  running -= 1;
  next();
}

function sendForm(item) {
  const form = new FormData();
  form.append("processor", item.processor);
  form.append("params", JSON.stringify(item.params));
  if (item.deleteAfter) form.append("delete_after_download", "true");
  form.append("file", item.file);
  const request = new XMLHttpRequest();
  item.request = request;
  request.open("POST", "/v1/jobs");
  for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
  item.actions.replaceChildren(abortButton(item));
  request.upload.addEventListener("progress", (event) => {
    if (event.lengthComputable) onProgress(item, event.loaded, event.total);
  });
  request.addEventListener("load", () => {
    if (request.status === 202) accepted(item, JSON.parse(request.responseText));
    else if (request.status === 401) refused(item, unauthorized());
    else refused(item, parseProblem(request.status, request.responseText));
  });
  request.addEventListener("error", () => refused(item, new Error(
    "The upload was cut off: the connection closed before the server answered.")));
  request.addEventListener("abort", () => aborted(item));
  request.addEventListener("loadend", () => { item.request = null; release(item); });
  request.send(form);
}

function sendResumable(item) {
  item.actions.replaceChildren(pauseButton(item), cancelButton(item));
  item.stats.textContent = item.loaded ? `Going on from ${bytes(item.loaded)}…` : "Starting…";
  const busy = new Set(items.filter((i) => i !== item && i.upload && i.upload.url).map((i) => i.upload.url));
  resumable.send(item, {
    located: (path) => { item.card.dataset.upload = path; },
    adopted: (url) => unfinished.drop(url),
    resumed: (offset) => {
      item.loaded = offset;
      item.resumedFrom = offset;
      begin(item, offset);
      if (offset) announce(`Upload of ${item.file.name} goes on from ${percent(offset / item.total)}.`);
    },
    progress: (sent, total) => onProgress(item, sent, total),
    done: (job) => { release(item); accepted(item, job); },
    failed: (error, canResume) => {
      release(item);
      if (canResume) paused(item, error);
      else refused(item, error);
    },
  }, busy);
}

function next() {
  while (running < AT_ONCE) {
    const item = items.find((candidate) => candidate.state === "waiting");
    if (!item) return;
    item.state = "sending";
    send(item);
  }
}

function finished(item, state) {
  item.state = state;
  $("#clear-done").hidden = false;
}

function accepted(item, job) {
  item.state = "accepted";
  item.job = job.id;
  item.card.dataset.job = job.id;
  item.uploadSeconds = (performance.now() - item.startedAt) / 1000;
  item.bar.setAttribute("aria-label", `Progress of ${item.file.name}`);
  store.put(job);
  showJob(item, store.get(job.id) || job);
  announce(`${item.file.name} uploaded: job ${job.status}.`);
}

function refused(item, error) {
  finished(item, "refused");
  setStatus(item, "refused");
  setBar(item.bar, item.total ? item.loaded / item.total : 1, "error", "refused");
  item.stats.textContent = "The server did not take it:";
  showError(item, limitText(item, error) || error.message);
  item.actions.replaceChildren();
  announce(`${item.file.name} was refused: ${error.message}`);
}

// A 413 carries the server's `limit`: said against the file's own size.
function limitText(item, error) {
  const limit = error.body && Number(error.body.limit);
  if (!limit || error.code !== "payload_too_large") return "";
  return `${item.file.name} is ${bytes(item.file.size)}; this server takes files up to ` +
    `${bytes(limit)} (payload_too_large).`;
}

// Paused by its button, or cut off for longer than the retries last: Resume goes on from the
// last byte the server kept.
function paused(item, error) {
  item.state = "paused";
  item.spent = performance.now() - item.startedAt;
  setStatus(item, "paused");
  setBar(item.bar, item.loaded / item.total, "idle", "paused");
  item.stats.textContent = `Paused at ${percent(item.loaded / item.total)} · ${bytes(item.loaded)} of ${bytes(item.total)}`;
  showError(item, error ? error.message : "");
  item.actions.replaceChildren(resumeButton(item), cancelButton(item));
  announce(error ? `Upload of ${item.file.name} stopped: ${error.message}` : `Upload of ${item.file.name} paused.`);
}

function pause(item) {
  if (item.state !== "sending") return;
  resumable.pause(item);
  release(item);
  paused(item, null);
}

function resume(item) {
  item.state = "waiting";
  setStatus(item, "waiting");
  showError(item, "");
  item.stats.textContent = "Waiting for a free upload slot";
  item.actions.replaceChildren(cancelButton(item));
  next();
}

// Cancelled: the server drops the bytes it has (tus termination).
async function cancel(item) {
  if (item.state === "cancelled") return;
  const was = item.state;
  item.state = "cancelled";
  release(item);
  item.actions.replaceChildren();
  let error = null;
  try {
    await resumable.cancel(item);
  } catch (failure) {
    error = failure;
  }
  finished(item, "cancelled");
  setStatus(item, "cancelled");
  setBar(item.bar, item.loaded / item.total, "idle", "cancelled");
  item.stats.textContent = was === "waiting" && !item.upload ? "Cancelled before it started."
    : `Cancelled after ${bytes(item.loaded)}.`;
  showError(item, error ? `The server may keep the bytes until they expire: ${error.message}` : "");
  announce(`Upload of ${item.file.name} cancelled.`);
}

function aborted(item) {
  finished(item, "aborted");
  setStatus(item, "aborted");
  setBar(item.bar, item.total ? item.loaded / item.total : 0, "idle", "aborted");
  item.stats.textContent = item.loaded ? `Aborted after ${bytes(item.loaded)}.` : "Aborted before it started.";
  item.actions.replaceChildren();
  announce(`Upload of ${item.file.name} aborted.`);
}

function abort(item) {
  if (item.request) item.request.abort();
  else if (item.state === "waiting") aborted(item);
}

// The card of an accepted upload follows its job.
function showJob(item, job) {
  setStatus(item, job.status);
  const ran = job.started_at ? seconds(job.started_at, isFinal(job) ? job.finished_at : null) : null;
  const upload = `Uploaded in ${duration(item.uploadSeconds)}`;
  if (job.status === "queued") {
    setBar(item.bar, 0, "idle", "queued");
    item.stats.textContent = `${upload} · waiting for a worker`;
  } else if (job.status === "running") {
    setBar(item.bar, job.progress, "process", `${percent(job.progress)} processed`);
    item.stats.textContent = `Processing ${percent(job.progress)} · ${duration(ran)} elapsed`;
  } else if (job.status === "succeeded") {
    setBar(item.bar, 1, "done", "done");
    const result = job.result ? ` · result ${bytes(job.result.size)}` : "";
    item.stats.textContent = `Done: processed in ${duration(ran)}${result}`;
  } else {
    setBar(item.bar, job.progress, job.status === "failed" ? "error" : "idle", job.status);
    item.stats.textContent = ran === null ? job.status : `${job.status} after ${duration(ran)}`;
  }
  showError(item, job.error ? `${job.error.message} (${job.error.code})` : "");
  if (isFinal(job)) finished(item, "accepted");
  const key = actionsKey(job);
  if (item.actionsKey !== key) {
    const focused = item.actions.contains(document.activeElement);
    item.actionsKey = key;
    const buttons = actionButtons(job);
    // The card's download says how big the result is.
    const download = buttons.findIndex((b) => b.classList.contains("download"));
    if (download >= 0) buttons[download] = downloadLink(job, { words: "size" });
    item.actions.replaceChildren(...buttons);
    if (focused) item.actions.lastElementChild.focus();
  }
}

export function tick() {
  for (const item of items) {
    const job = item.job && store.get(item.job);
    if (job && job.status === "running") showJob(item, job);
  }
}

export function add(files, { processor, params, deleteAfter }) {
  for (const file of files) {
    const item = {
      file, processor, params, deleteAfter, state: "waiting", loaded: 0, total: file.size,
      resumable: resumable.wanted(file),
    };
    items.push(item);
    makeCard(item);
    item.card.dataset.kind = item.resumable ? "resumable" : "form";
    item.stats.textContent = "Waiting for a free upload slot";
    item.actions.replaceChildren(item.resumable ? cancelButton(item) : abortButton(item));
  }
  announce(`${files.length} ${files.length === 1 ? "file" : "files"} queued for upload.`);
  next();
}

function clearDone() {
  for (const item of items.filter((i) => ["refused", "aborted", "cancelled"].includes(i.state)
    || (i.job && store.get(i.job) && isFinal(store.get(i.job))))) {
    item.card.remove();
    items.splice(items.indexOf(item), 1);
  }
  $("#clear-done").hidden = true;
  $("#uploads-empty").hidden = $("#uploads").childElementCount > 0;
  $("#session-title").focus();
}

export function init() {
  store.subscribe((job, previous) => {
    const item = items.find((i) => i.job === job.id);
    if (!item) return;
    if (job.deleted) {
      setStatus(item, "deleted");
      item.actions.replaceChildren();
      return;
    }
    showJob(item, job);
    if (previous && previous.status !== job.status) announce(`${jobName(job)}: ${job.status}.`);
  });
  $("#clear-done").addEventListener("click", clearDone);
}

// Once the API answers (the key, if one is needed, is known): the uploads an earlier visit
// left unfinished.
export function showUnfinished() {
  return unfinished.show((url) => items.some((item) => item.upload && item.upload.url === url));
}

// The jobs table: GET /v1/jobs filtered by status and processor, a page at a time (the
// server's `next_cursor`), kept current by the live channel through the store. On a phone the
// CSS lays each row out as a card, so nothing needs sideways scrolling.

import { api, isFinal } from "./api.js";
import { actionButtons, actionsKey, jobHref, jobName } from "./actions.js";
import { $, element, notice, progressBar, setBar } from "./dom.js";
import { age, bytes, duration, humanizeBytes, percent, seconds } from "./format.js";
import * as store from "./store.js";

const PAGE_SIZE = 20;
// `arrived`: jobs the live channel added to the first page, kept on top of it when it is
// reloaded (a load on its way when they came would not have them).
const state = { cursors: [null], page: 0, next: null, ids: [], arrived: [] };

function filters() {
  return { status: $("#filter-status").value, processor: $("#filter-processor").value };
}

function matches(job) {
  const { status, processor } = filters();
  return (!status || job.status === status) && (!processor || job.processor === processor);
}

function runTime(job) {
  if (!job.started_at) return null;
  return seconds(job.started_at, isFinal(job) ? job.finished_at : null);
}

function cell(label, className, ...children) {
  return element("td", { "data-label": label, class: className }, ...children);
}

function statusCell(job) {
  const badge = element("span", { class: "status", "data-status": job.status, text: job.status });
  const td = cell("Status", "status-cell", badge);
  if (job.status === "running") {
    const bar = progressBar(`Progress of ${jobName(job)}`);
    setBar(bar, job.progress, "", percent(job.progress));
    td.append(bar, element("span", { class: "pct", text: percent(job.progress) }));
  }
  return td;
}

function row(job) {
  const error = job.error ? humanizeBytes(`${job.error.message} (${job.error.code})`) : "";
  const actions = cell("Actions", "actions", ...actionButtons(job));
  actions.dataset.key = actionsKey(job);
  const tr = element("tr", { "data-job": job.id, "data-status": job.status },
    statusCell(job),
    cell("File", "file", element("a", { href: jobHref(job.id), text: jobName(job), title: job.id })),
    cell("Processor", "processor", job.processor),
    cell("Size", "num size", bytes(job.input && job.input.size)),
    cell("Duration", "num duration", duration(runTime(job))),
    cell("Age", "age", element("time", { datetime: job.created_at, text: age(job.created_at) })),
    cell("Error", "error", error),
    actions);
  if (!error) tr.querySelector("td.error").classList.add("empty");
  return tr;
}

// A changed job, redrawn in place; its buttons are kept when they are still the right ones.
function update(job) {
  const old = $(`#recent tbody tr[data-job="${CSS.escape(job.id)}"]`);
  if (!old) return;
  const fresh = row(job);
  const keep = old.querySelector("td.actions");
  const made = fresh.querySelector("td.actions");
  const focused = keep.contains(document.activeElement);
  if (keep.dataset.key === made.dataset.key) fresh.replaceChild(keep, made);
  old.replaceWith(fresh);
  // Cancel became Delete under the keyboard's focus: the focus moves to its successor.
  if (focused && !keep.isConnected) made.lastElementChild.focus();
}

function showEmpty() {
  const empty = state.ids.length === 0;
  $("#jobs-empty").hidden = !empty;
  $("#recent").hidden = empty;
}

function render() {
  const rows = state.ids.map(store.get).filter(Boolean).map(row);
  $("#recent tbody").replaceChildren(...rows);
  showEmpty();
  $("#newer").disabled = state.page === 0;
  $("#older").disabled = !state.next;
  $("#page-number").textContent = `Page ${state.page + 1}`;
  $(".pager").hidden = state.page === 0 && !state.next;
}

let loads = 0; // the latest load's number: an earlier one answering late is dropped

export async function load() {
  const mine = ++loads;
  const { status, processor } = filters();
  const query = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (status) query.set("status", status);
  if (processor) query.set("processor", processor);
  const cursor = state.cursors[state.page];
  if (cursor) query.set("cursor", cursor);
  let answer;
  try {
    answer = await api(`/v1/jobs?${query}`);
  } catch (error) {
    if (mine === loads) notice(error.message);
    return;
  }
  // A newer load (another filter or page) was asked for meanwhile: its answer is the one
  // to show, whichever comes last.
  if (mine !== loads) return;
  state.listing = true; // the list's own jobs are drawn below, not inserted one by one
  for (const job of answer.items) store.put(job);
  state.listing = false;
  const listed = answer.items.map((job) => job.id);
  const arrived = state.page === 0
    ? state.arrived.filter((id) => !listed.includes(id) && store.get(id)) : [];
  state.ids = [...arrived, ...listed];
  state.next = answer.next_cursor;
  render();
}

function turn(step) {
  state.arrived = [];
  if (step > 0) state.cursors[state.page + 1] = state.next;
  state.page = Math.max(0, state.page + step);
  load();
}

function restart() {
  state.arrived = [];
  state.cursors = [null];
  state.page = 0;
  load();
}

// The live channel's news: a row on this page is redrawn; a job new to the page joins the top
// of the first page if it passes the filters; a deleted job leaves.
function onChange(job, previous) {
  if (state.listing) return;
  if (job.deleted) {
    state.ids = state.ids.filter((id) => id !== job.id);
    const gone = $(`#recent tbody tr[data-job="${CSS.escape(job.id)}"]`);
    if (gone) gone.remove();
    showEmpty();
  } else if (state.ids.includes(job.id)) {
    update(job);
  } else if (!previous && state.page === 0 && matches(job)) {
    // Inserted, not redrawn: the keyboard's focus stays where it is. The first page grows
    // (its `next_cursor` still starts the second page after its last row).
    state.ids = [job.id, ...state.ids];
    state.arrived.unshift(job.id);
    $("#recent tbody").prepend(row(job));
    showEmpty();
  }
}

// Ages and running times move on by themselves.
export function tick() {
  for (const tr of document.querySelectorAll("#recent tbody tr")) {
    const job = store.get(tr.dataset.job);
    if (!job) continue;
    tr.querySelector("td.age time").textContent = age(job.created_at);
    if (job.status === "running") tr.querySelector("td.duration").textContent = duration(runTime(job));
  }
}

export function setProcessors(names) {
  const select = $("#filter-processor");
  const chosen = select.value;
  select.replaceChildren(element("option", { value: "", text: "All" }),
    ...names.map((name) => element("option", { value: name, text: name })));
  select.value = names.includes(chosen) ? chosen : "";
}

export function init() {
  store.subscribe(onChange);
  $("#filter-status").addEventListener("change", restart);
  $("#filter-processor").addEventListener("change", restart);
  $("#refresh").addEventListener("click", load);
  $("#older").addEventListener("click", () => turn(1));
  $("#newer").addEventListener("click", () => turn(-1));
}

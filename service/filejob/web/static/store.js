// Every job the page knows, by id, fed by lists, polls and the live channel alike. Events
// arrive at least once and a list can answer with an older state than the stream has already
// shown (it was read before the change), so a document is applied only if it does not go back
// in its job's life. The job JSON has no version, but its life can be ordered from what it does
// carry (see `stage`).

import { FINAL } from "./api.js";

const jobs = new Map();
const listeners = new Set();

// Where a job document stands in its job's life: queued; then, for each attempt, running (its
// progress only rising) and, after a retry or a server's restart, queued again; then final (its
// webhook's attempts only rising); then expired. Every start stamps `started_at` anew, so of
// two unfinished states the later is the one whose attempt started later or, in the same
// attempt, the one queued again after running, or running with more progress. (`attempts`
// would not do: a run stopped by a server's shutdown is not counted, and the count goes back.)
// The start times are the servers' clocks, which must agree (docs/api.md, "Live events of all
// your jobs"): two starts of one job closer together than two clocks disagree may be misread.
function stage(job) {
  if (job.status === "expired") return [2, 0, 0, 0];
  if (FINAL.includes(job.status)) {
    const hook = job.callback;
    const done = hook && hook.state && hook.state !== "pending" ? 1 : 0;
    return [1, hook ? hook.attempts : 0, done, 0];
  }
  const phase = job.status === "running" ? 1 : job.started_at ? 2 : 0;
  return [0, instant(job.started_at), phase, job.progress || 0];
}

// An ISO 8601 time in microseconds (the API writes six digits; Date.parse keeps three).
function instant(iso) {
  if (!iso) return -Infinity;
  const fraction = /\.\d{3}(\d{0,3})/.exec(iso);
  return Date.parse(iso) * 1000 + (fraction ? Number(fraction[1].padEnd(3, "0")) : 0);
}

// <0: `a` is earlier in its job's life than `b`; 0: the same stage; >0: later.
function compare(a, b) {
  const [x, y] = [stage(a), stage(b)];
  const at = x.findIndex((value, n) => value !== y[n]);
  return at < 0 ? 0 : x[at] - y[at];
}

function same(a, b) {
  return a.status === b.status && a.progress === b.progress && a.attempts === b.attempts
    && a.finished_at === b.finished_at && a.started_at === b.started_at
    && Boolean(a.result) === Boolean(b.result) && Boolean(a.error) === Boolean(b.error);
}

function notify(job, previous) {
  for (const listener of listeners) listener(job, previous);
}

export function get(id) {
  return jobs.get(id);
}

// A whole job document (GET /v1/jobs/{id}, a list item, a `status` event).
export function put(job) {
  const previous = jobs.get(job.id);
  if (previous && compare(job, previous) < 0) return previous;
  jobs.set(job.id, job);
  if (!previous || !same(previous, job)) notify(job, previous);
  return job;
}

// A `progress` event: {id, status, progress}. It does not say which attempt it is of, so it
// is applied to the job as the page shows it, and only if that moves the job on (a late event
// of an attempt that has since ended changes nothing); jobs the page does not show are left.
export function progress({ id, status, progress: value }) {
  const previous = jobs.get(id);
  if (!previous) return;
  const job = { ...previous, status, progress: value };
  if (compare(job, previous) <= 0) return;
  jobs.set(id, job);
  notify(job, previous);
}

// A deleted job: listeners see `null` as its new state.
export function forget(id) {
  const previous = jobs.get(id);
  jobs.delete(id);
  if (previous) notify({ id, deleted: true }, previous);
}

export function subscribe(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

export function unfinished() {
  return [...jobs.values()].filter((job) => !FINAL.includes(job.status));
}

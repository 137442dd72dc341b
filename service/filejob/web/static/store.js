// Every job the page knows, by id, fed by lists, polls and the live channel alike. Events
// arrive at least once and lists can answer with an older state than the stream has already
// shown, so a change is applied only if it does not go back: a final state is never replaced
// by an unfinished one, nor `expired` by another final state.

import { FINAL } from "./api.js";

const jobs = new Map();
const listeners = new Set();

function rank(status) {
  if (status === "expired") return 2;
  return FINAL.includes(status) ? 1 : 0;
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
  if (previous && rank(job.status) < rank(previous.status)) return previous;
  jobs.set(job.id, job);
  if (!previous || !same(previous, job)) notify(job, previous);
  return job;
}

// A `progress` event: {id, status, progress}. Ignored for jobs the page does not show and for
// jobs whose status the page already knows to have moved on.
export function progress({ id, status, progress: value }) {
  const previous = jobs.get(id);
  if (!previous || FINAL.includes(previous.status)) return;
  if (previous.status === status && previous.progress === value) return;
  const job = { ...previous, status, progress: value };
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

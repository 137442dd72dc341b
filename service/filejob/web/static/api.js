// The page talks to the public API like any other client: the API key (kept in this
// browser's local storage) goes in the Authorization header; errors are RFC 9457 problems.

import { humanizeBytes } from "./format.js";

const KEY = "filejob.apiKey";

export const FINAL = ["succeeded", "failed", "cancelled", "expired"];
export const isFinal = (job) => FINAL.includes(job.status);

export function savedKey() {
  return localStorage.getItem(KEY);
}

export function saveKey(value) {
  if (value) localStorage.setItem(KEY, value);
  else localStorage.removeItem(KEY);
}

export function authHeaders() {
  const key = savedKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// A refused request: the problem's `code` (stable), its words, and the HTTP status.
export class ApiError extends Error {
  constructor(status, body) {
    const words = body.detail || body.title || `HTTP ${status}`;
    super(body.code ? `${humanizeBytes(words)} (${body.code})` : humanizeBytes(words));
    this.status = status;
    this.code = body.code || null;
    this.body = body;
  }

  // The route itself is missing (an older server), as opposed to a missing job.
  get noRoute() {
    return this.code === "not_found" || this.code === "method_not_allowed";
  }
}

export function parseProblem(status, text) {
  let body = {};
  try {
    body = JSON.parse(text);
  } catch {
    body = { title: `HTTP ${status}` };
  }
  return new ApiError(status, body);
}

// Called when the server says a key is needed (401); app.js opens the key box.
let onUnauthorized = () => {};
export function whenUnauthorized(callback) {
  onUnauthorized = callback;
}

export class KeyNeeded extends Error {
  constructor() {
    super("This server needs an API key: enter it above.");
  }
}

export function unauthorized() {
  onUnauthorized();
  return new KeyNeeded();
}

export async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...authHeaders(), ...options.headers } });
  if (response.status === 401) throw unauthorized();
  if (!response.ok) throw parseProblem(response.status, await response.text());
  return response.status === 204 ? null : response.json();
}

// Cancelling: POST /cancel where the server has it; DELETE (which cancels an unfinished job)
// on servers from before that route.
export async function cancelJob(id) {
  try {
    return await api(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  } catch (error) {
    if (!(error instanceof ApiError) || !error.noRoute) throw error;
    return api(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
  }
}

export function deleteJob(id) {
  return api(`/v1/jobs/${encodeURIComponent(id)}`, { method: "DELETE" });
}

export function jobPath(id) {
  return `/v1/jobs/${encodeURIComponent(id)}`;
}

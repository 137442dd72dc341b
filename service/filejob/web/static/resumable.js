// Resumable uploads: big files go up as tus 1.0.0 uploads at /v1/uploads with tus-js-client
// (vendor/tus.min.js, loaded when first needed), in chunks, retried through a flaky network,
// paused and resumed, and resumed after the page was closed: tus-js-client keeps each upload's
// URL in this browser's local storage, under a fingerprint of the file and of its job, until
// the upload is done. The server makes the job when the last byte lands and names it in that
// answer's `Link: </v1/jobs/{id}>; rel="monitor"` (and in GET /v1/uploads/{id}'s `job_id`).
// No DOM here: uploads.js draws the cards.

import { api, authHeaders, jobPath, parseProblem, unauthorized } from "./api.js";

const MiB = 1024 * 1024;
const query = new URLSearchParams(location.search);
// Files of this size and up go resumable, smaller ones as one multipart POST /v1/jobs; the
// page's address can say otherwise: `?resumable_from=<bytes>` (0: every file).
const RESUMABLE_FROM = setting("resumable_from", 64 * MiB, 0);
// One PATCH per chunk: a cut costs at most the chunk on its way (`?chunk_size=<bytes>`).
const CHUNK_SIZE = setting("chunk_size", 16 * MiB, 1);
// tus-js-client retries a request cut off or answered 5xx, 409 or 423 after these delays (ms);
// a chunk that gets through starts the count again.
const RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
// Absolute, as tus-js-client resolves the uploads' URLs against it.
const ENDPOINT = new URL("/v1/uploads", location.href).href;
const LIBRARY = "/static/vendor/tus.min.js";

function setting(name, fallback, least) {
  const value = Number(query.get(name));
  return query.has(name) && Number.isSafeInteger(value) && value >= least ? value : fallback;
}

export function wanted(file) {
  return file.size > 0 && file.size >= RESUMABLE_FROM;
}

let loading = null;
// tus-js-client is a classic script (it sets `window.tus`), loaded once, when first needed.
function library() {
  loading ||= new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = LIBRARY;
    script.addEventListener("load", () => resolve(window.tus));
    script.addEventListener("error", () => {
      loading = null;
      script.remove();
      reject(new Error("The resumable upload client did not load: reload the page to try again."));
    });
    document.head.append(script);
  });
  return loading;
}

// A stored upload is resumed only for the same file (name, type, size, modification time) sent
// to the same job: the same file sent again with other parameters is a new upload.
function fingerprint(file, options) {
  const parts = [file.name, file.type, file.size, file.lastModified, options.endpoint];
  return Promise.resolve(["filejob", ...parts, JSON.stringify(options.metadata)].join("-"));
}

// Upload-Metadata: the fields a multipart POST /v1/jobs would carry.
function metadata(item) {
  const fields = { filename: item.file.name, processor: item.processor, params: JSON.stringify(item.params) };
  if (item.file.type) fields.filetype = item.file.type;
  if (item.deleteAfter) fields.delete_after_download = "true";
  return fields;
}

// The key as it is now (one saved after a 401 goes with the next request), and an
// Idempotency-Key on the creation, random per file.
function authorize(req, idempotencyKey) {
  for (const [name, value] of Object.entries(authHeaders())) req.setHeader(name, value);
  if (idempotencyKey && req.getMethod() === "POST") req.setHeader("Idempotency-Key", idempotencyKey);
}

function randomKey() {
  // crypto.randomUUID is for secure contexts only; a page served over plain HTTP has this.
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
}

function monitoredJob(link) {
  const match = /<\/v1\/jobs\/([^>/]+)>\s*;\s*rel="?monitor"?/.exec(link || "");
  return match ? decodeURIComponent(match[1]) : null;
}

function pathOf(url) {
  return new URL(url, location.href).pathname;
}

// An error of tus-js-client, in the page's words: the server's problem, or a cut connection.
// `resumable`: going on later may work (a cut, a server busy or failing, a key to enter);
// otherwise the server refused the file for good.
function explain(error) {
  const response = error.originalResponse;
  if (!response) {
    const cut = new Error("The connection was lost and the retries ran out: Resume goes on from the last byte the server kept.");
    return { error: error.originalRequest ? cut : error, resumable: Boolean(error.originalRequest) };
  }
  const status = response.getStatus();
  if (status === 401) return { error: unauthorized(), resumable: true };
  const body = response.getBody() || "";
  // `upload_interrupted` (400): a newer request for this upload (another tab, a retry) took
  // over; the upload itself is fine, and must not be deleted.
  const resumable =
    [408, 409, 423, 429].includes(status) || status >= 500 || problemCode(body) === "upload_interrupted";
  return { error: parseProblem(status, body), resumable };
}

function problemCode(body) {
  try {
    return JSON.parse(body).code || null;
  } catch {
    return null;
  }
}

async function forgetStored(upload) {
  const url = upload.url;
  if (!url) return;
  const storage = (await library()).defaultOptions.urlStorage;
  for (const entry of await upload.findPreviousUploads()) {
    if (entry.uploadUrl === url) await storage.removeUpload(entry.urlStorageKey);
  }
}

// The stored upload to go on with, if this browser has one for the file and job that no other
// upload of the page is sending.
async function previousUpload(upload, busy) {
  const entries = (await upload.findPreviousUploads()).filter((e) => e.uploadUrl && !busy.has(e.uploadUrl));
  entries.sort((a, b) => Date.parse(b.creationTime) - Date.parse(a.creationTime));
  return entries[0] || null;
}

// Starts (or, after a pause or a cut, resumes) `item`'s upload. `events`: located(path),
// adopted(url) (a stored upload of an earlier visit goes on), resumed(offset), progress(sent,
// total), done(job), failed(error, resumable). `busy`: upload URLs other cards are sending.
export async function send(item, events, busy) {
  let tus;
  try {
    tus = await library();
  } catch (error) {
    events.failed(error, true);
    return;
  }
  if (item.state !== "sending") return; // cancelled or paused while the library loaded
  if (!item.upload) {
    item.upload = makeUpload(tus, item, events);
    const previous = await previousUpload(item.upload, busy);
    if (previous) {
      item.upload.resumeFromPreviousUpload(previous);
      events.adopted(previous.uploadUrl);
    }
    if (item.state !== "sending") return;
  }
  item.upload.start();
}

function makeUpload(tus, item, events) {
  const idempotencyKey = randomKey();
  const upload = new tus.Upload(item.file, {
    endpoint: ENDPOINT,
    chunkSize: CHUNK_SIZE,
    retryDelays: RETRY_DELAYS,
    metadata: metadata(item),
    fingerprint,
    removeFingerprintOnSuccess: true,
    onBeforeRequest: (req) => authorize(req, idempotencyKey),
    onAfterResponse(req, res) {
      const job = monitoredJob(res.getHeader("Link"));
      if (job) item.jobId = job;
      if (req.getMethod() === "HEAD" && res.getStatus() === 200) {
        events.resumed(Number(res.getHeader("Upload-Offset")) || 0);
      }
    },
    onUploadUrlAvailable: () => events.located(pathOf(upload.url)),
    onProgress: (sent, total) => events.progress(sent, total),
    onSuccess: () => finish(item, upload, events),
    onError(error) {
      const { error: shown, resumable } = explain(error);
      // Refused for good: the upload's bytes are of no more use; the server drops them.
      if (!resumable && upload.url) upload.abort(true).catch(() => forgetStored(upload));
      events.failed(shown, resumable);
    },
  });
  return upload;
}

async function finish(item, upload, events) {
  try {
    const id = item.jobId || (await api(pathOf(upload.url))).job_id;
    if (!id) throw new Error("The upload is complete, but the server named no job for it.");
    events.done(await api(jobPath(id)));
  } catch (error) {
    events.failed(error, false);
  }
}

// Pauses: the request on its way stops; the server keeps what it acknowledged.
export function pause(item) {
  if (item.upload) item.upload.abort(false);
}

// Cancels: the upload is terminated (DELETE) and forgotten by this browser.
export async function cancel(item) {
  const upload = item.upload;
  if (!upload) return;
  try {
    await upload.abort(true);
  } finally {
    await forgetStored(upload);
  }
}

// Uploads an earlier visit left unfinished: [{entry, state}], `state` the server's GET
// /v1/uploads/{id} (offset, length, expires_at). Those the server no longer has (404, 410) or
// that became a job are forgotten.
export async function unfinished() {
  if (!Object.keys(localStorage).some((key) => key.startsWith("tus::"))) return [];
  const storage = (await library()).defaultOptions.urlStorage;
  if (typeof storage.findAllUploads !== "function") return []; // no storage in this browser
  const found = [];
  for (const entry of await storage.findAllUploads()) {
    if (!entry.uploadUrl || !entry.uploadUrl.startsWith(`${ENDPOINT}/`)) continue;
    if (!entry.metadata || !entry.metadata.processor) continue;
    let state;
    try {
      state = await api(pathOf(entry.uploadUrl));
    } catch (error) {
      if (error.status === 404 || error.status === 410) await storage.removeUpload(entry.urlStorageKey);
      continue;
    }
    if (state.job_id) await storage.removeUpload(entry.urlStorageKey);
    else found.push({ entry, state });
  }
  return found;
}

// Discards an upload an earlier visit left: terminated on the server, forgotten here.
export async function discard(entry) {
  const tus = await library();
  try {
    await tus.Upload.terminate(entry.uploadUrl, {
      retryDelays: RETRY_DELAYS.slice(0, 3),
      onBeforeRequest: (req) => authorize(req, null),
    });
  } catch (error) {
    const status = error.originalResponse && error.originalResponse.getStatus();
    if (status !== 404 && status !== 410) throw explain(error).error;
  }
  await tus.defaultOptions.urlStorage.removeUpload(entry.urlStorageKey);
}

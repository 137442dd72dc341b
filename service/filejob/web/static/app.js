// filejob's page: upload files, watch their jobs live (Server-Sent Events read with fetch, so
// that an API key can be sent), download results, manage recent jobs. No build step.
"use strict";

const $ = (selector) => document.querySelector(selector);
const FINAL = ["succeeded", "failed", "cancelled", "expired"];
const KEY = "filejob.apiKey";
let processors = [];
let picked = [];

function headers() {
  const key = localStorage.getItem(KEY);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function notice(text) {
  const box = $("#notice");
  box.textContent = text || "";
  box.hidden = !text;
}

async function problem(response) {
  try {
    const body = await response.json();
    return `${body.detail || body.title} (${body.code})`;
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: { ...headers(), ...options.headers } });
  if (response.status === 401) {
    $("#key-box").open = true;
    throw new Error("This server needs an API key: enter it above.");
  }
  if (!response.ok) throw new Error(await problem(response));
  return response.status === 204 ? null : response.json();
}

function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children);
  return node;
}

// -- the API key ------------------------------------------------------------------------------

function showKeyState() {
  $("#key-state").textContent = localStorage.getItem(KEY) ? "(saved)" : "(none)";
}

$("#key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const value = $("#api-key").value.trim();
  if (value) localStorage.setItem(KEY, value);
  $("#api-key").value = "";
  showKeyState();
  start();
});
$("#forget-key").addEventListener("click", () => {
  localStorage.removeItem(KEY);
  showKeyState();
});

// -- processors and their parameter forms ----------------------------------------------------

function fieldSchema(schema, root) {
  // Optional fields are anyOf [type, null]; enums may sit behind a $ref.
  let field = schema;
  if (field.anyOf) field = { ...field, ...field.anyOf.find((s) => s.type !== "null") };
  if (field.$ref) field = { ...field, ...root.$defs[field.$ref.split("/").pop()] };
  return field;
}

function renderParams() {
  const processor = processors.find((p) => p.name === $("#processor").value);
  const box = $("#params");
  box.replaceChildren(element("legend", { text: "Parameters" }));
  $("#processor-description").textContent = processor ? processor.description : "";
  if (!processor) return;
  const schema = processor.params_schema;
  const properties = Object.entries(schema.properties || {});
  if (!properties.length) box.append(element("p", { class: "hint", text: "No parameters." }));
  for (const [name, raw] of properties) {
    const field = fieldSchema(raw, schema);
    const id = `param-${name}`;
    let input;
    if (field.enum) {
      input = element("select", { id, name });
      for (const option of field.enum) {
        input.append(element("option", { value: option, selected: option === field.default, text: option }));
      }
    } else if (field.type === "boolean") {
      input = element("input", { id, name, type: "checkbox", checked: field.default === true });
    } else if (field.type === "integer" || field.type === "number") {
      input = element("input", {
        id, name, type: "number", inputmode: "numeric", min: field.minimum, max: field.maximum,
        step: field.type === "integer" ? 1 : "any", placeholder: field.default ?? "default",
      });
    } else {
      input = element("input", {
        id, name, type: "text", maxlength: field.maxLength, placeholder: field.default ?? "",
      });
    }
    input.dataset.kind = field.type || "string";
    const label = element("label", { for: id, text: field.title || name });
    const help = element("span", { class: "hint", text: field.description || "" });
    box.append(element("div", { class: "field" }, label, input, help));
  }
}

function collectParams() {
  const params = {};
  for (const input of $("#params").querySelectorAll("input, select")) {
    if (input.type === "checkbox") params[input.name] = input.checked;
    else if (input.value === "") continue; // the server's default
    else if (input.dataset.kind === "integer" || input.dataset.kind === "number") params[input.name] = Number(input.value);
    else params[input.name] = input.value;
  }
  return params;
}

async function loadProcessors() {
  processors = (await api("/v1/processors")).items;
  const select = $("#processor");
  const chosen = select.value;
  select.replaceChildren(...processors.map((p) => element("option", { value: p.name, text: p.name })));
  if (chosen) select.value = chosen;
  renderParams();
}
$("#processor").addEventListener("change", renderParams);

// -- picking files ----------------------------------------------------------------------------

function showPicked() {
  $("#picked").replaceChildren(...picked.map((f) => element("li", { text: `${f.name} (${size(f.size)})` })));
}

function size(bytes) {
  const units = ["B", "KB", "MB", "GB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

const drop = $("#drop");
drop.addEventListener("click", () => $("#files").click());
drop.addEventListener("keydown", (event) => {
  if (event.key === "Enter" || event.key === " ") { event.preventDefault(); $("#files").click(); }
});
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  picked = [...event.dataTransfer.files];
  showPicked();
});
$("#files").addEventListener("change", () => { picked = [...$("#files").files]; showPicked(); });

// -- uploading and watching -------------------------------------------------------------------

function card(file) {
  const status = element("span", { class: "status", text: "uploading" });
  const bar = element("progress", { max: 1, value: 0, "aria-label": `${file.name} upload` });
  const actions = element("span", { class: "actions" });
  const error = element("p", { class: "error", hidden: true });
  const item = element("li", { class: "card" }, element("strong", { text: file.name }), " ", status, bar, actions, error);
  $("#uploads").prepend(item);
  return { item, status, bar, actions, error };
}

function upload(file, form, view) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/v1/jobs");
    for (const [name, value] of Object.entries(headers())) request.setRequestHeader(name, value);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) view.bar.value = event.loaded / event.total;
    });
    request.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch { /* not JSON */ }
      if (request.status === 202) resolve(body);
      else reject(new Error(body.detail ? `${body.detail} (${body.code})` : `${request.status}`));
    });
    request.addEventListener("error", () => reject(new Error("The upload was cut off.")));
    request.send(form);
  });
}

function showJob(view, job) {
  view.status.textContent = job.status;
  view.status.dataset.status = job.status;
  view.item.dataset.job = job.id;
  view.bar.setAttribute("aria-label", `${job.id} progress`);
  view.bar.value = job.status === "succeeded" ? 1 : job.progress;
  view.actions.replaceChildren();
  if (job.status === "succeeded" && job.result) {
    view.actions.append(element("a", { href: job.result.url, download: job.result.filename, class: "download", text: `Download ${job.result.filename} (${size(job.result.size)})` }));
  }
  if (!FINAL.includes(job.status)) {
    view.actions.append(element("button", { type: "button", text: "Cancel", onclick: () => remove(job.id) }));
  }
  if (job.error) {
    view.error.hidden = false;
    view.error.textContent = `${job.error.message} (${job.error.code})`;
  }
}

async function watch(job, view) {
  // SSE over fetch: EventSource cannot send the API key. Reconnects with Last-Event-ID.
  let last = null;
  let state = job;
  while (!FINAL.includes(state.status)) {
    try {
      const response = await fetch(`/v1/jobs/${job.id}/events`, {
        headers: { ...headers(), ...(last ? { "Last-Event-ID": last } : {}) },
      });
      if (!response.ok) throw new Error(await problem(response));
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const fields = Object.fromEntries(
            block.split("\n").filter((l) => l && !l.startsWith(":")).map((l) => {
              const at = l.indexOf(":");
              return [l.slice(0, at), l.slice(at + 1).replace(/^ /, "")];
            }));
          if (!fields.data) continue;
          last = fields.id || last;
          const data = JSON.parse(fields.data);
          state = fields.event === "status" ? data : { ...state, ...data };
          showJob(view, state);
        }
      }
    } catch (error) {
      view.error.hidden = false;
      view.error.textContent = `${error.message} Retrying…`;
      await new Promise((resolve) => setTimeout(resolve, 1000));
      state = await api(`/v1/jobs/${job.id}`).catch(() => state);
      view.error.hidden = true;
    }
  }
  showJob(view, state);
  loadRecent();
}

$("#submit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!picked.length) { notice("Choose at least one file first."); drop.focus(); return; }
  notice("");
  const params = collectParams();
  const files = picked;
  picked = [];
  showPicked();
  await Promise.all(files.map(async (file) => {
    const view = card(file);
    const form = new FormData();
    form.append("processor", $("#processor").value);
    form.append("params", JSON.stringify(params));
    if ($("#delete-after").checked) form.append("delete_after_download", "true");
    form.append("file", file);
    try {
      const job = await upload(file, form, view);
      showJob(view, job);
      await watch(job, view);
    } catch (error) {
      view.status.textContent = "refused";
      view.error.hidden = false;
      view.error.textContent = error.message;
    }
  }));
});

// -- recent jobs ------------------------------------------------------------------------------

async function remove(id) {
  try {
    await api(`/v1/jobs/${id}`, { method: "DELETE" });
  } catch (error) {
    notice(error.message);
  }
  loadRecent();
}

async function loadRecent() {
  let items;
  try {
    items = (await api("/v1/jobs?limit=20")).items;
  } catch (error) {
    notice(error.message);
    return;
  }
  $("#recent tbody").replaceChildren(...items.map((job) => {
    const actions = element("td", { class: "actions" });
    if (job.status === "succeeded" && job.result) {
      actions.append(element("a", { href: job.result.url, download: job.result.filename, text: "Download" }));
    }
    const final = FINAL.includes(job.status);
    actions.append(element("button", {
      type: "button", text: final ? "Delete" : "Cancel",
      "aria-label": `${final ? "Delete" : "Cancel"} job ${job.id}`,
      onclick: () => remove(job.id),
    }));
    return element("tr", { "data-job": job.id },
      element("td", { class: "id", text: job.id.slice(0, 8), title: job.id }),
      element("td", { text: job.input.filename }),
      element("td", { text: job.processor }),
      element("td", { class: "status", "data-status": job.status, text: job.status }),
      element("td", { text: new Date(job.created_at).toLocaleString() }),
      actions);
  }));
}
$("#refresh").addEventListener("click", loadRecent);

async function start() {
  showKeyState();
  try {
    await loadProcessors();
    notice("");
  } catch (error) {
    notice(error.message);
  }
  loadRecent();
}

start();

// The "New jobs" form: files picked or dropped, a processor, and a parameter form built from
// the processor's JSON Schema.

import { $, element, notice } from "./dom.js";
import { bytes } from "./format.js";
import * as uploads from "./uploads.js";

let processors = [];
let picked = [];

function fieldSchema(schema, root) {
  // Optional fields are anyOf [type, null]; enums may sit behind a $ref.
  let field = schema;
  if (field.anyOf) field = { ...field, ...field.anyOf.find((s) => s.type !== "null") };
  if (field.$ref) field = { ...field, ...root.$defs[field.$ref.split("/").pop()] };
  return field;
}

function input(name, field) {
  const id = `param-${name}`;
  if (field.enum) {
    return element("select", { id, name },
      ...field.enum.map((option) => element("option", { value: option, selected: option === field.default, text: option })));
  }
  if (field.type === "boolean") {
    return element("input", { id, name, type: "checkbox", checked: field.default === true });
  }
  if (field.type === "integer" || field.type === "number") {
    return element("input", {
      id, name, type: "number", inputmode: field.type === "integer" ? "numeric" : "decimal",
      min: field.minimum, max: field.maximum, step: field.type === "integer" ? 1 : "any",
      placeholder: field.default ?? "default",
    });
  }
  return element("input", { id, name, type: "text", maxlength: field.maxLength, placeholder: field.default ?? "" });
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
    const control = input(name, field);
    control.dataset.kind = field.type || "string";
    const helpId = `param-${name}-help`;
    if (field.description) control.setAttribute("aria-describedby", helpId);
    const help = element("span", { class: "hint", id: helpId, text: field.description || "" });
    const label = control.type === "checkbox"
      ? element("label", { class: "check" }, control, field.title || name)
      : element("label", { for: control.id, text: field.title || name });
    box.append(element("div", { class: "field" }, label, control.type === "checkbox" ? null : control, help));
  }
}

function collectParams() {
  const params = {};
  for (const control of $("#params").querySelectorAll("input, select")) {
    if (control.type === "checkbox") params[control.name] = control.checked;
    else if (control.value === "") continue; // the server's default
    else if (control.dataset.kind === "integer" || control.dataset.kind === "number") params[control.name] = Number(control.value);
    else params[control.name] = control.value;
  }
  return params;
}

export async function loadProcessors(api) {
  processors = (await api("/v1/processors")).items;
  const select = $("#processor");
  const chosen = select.value;
  select.replaceChildren(...processors.map((p) => element("option", { value: p.name, text: p.name })));
  if (chosen && processors.some((p) => p.name === chosen)) select.value = chosen;
  renderParams();
  return processors.map((p) => p.name);
}

function showPicked() {
  const total = picked.reduce((sum, file) => sum + file.size, 0);
  $("#picked").replaceChildren(...picked.map((f) => element("li", {},
    element("span", { class: "name", text: f.name }), " ", element("span", { class: "hint", text: bytes(f.size) }))));
  $("#picked-summary").textContent = picked.length
    ? `${picked.length} ${picked.length === 1 ? "file" : "files"} chosen, ${bytes(total)}.` : "";
}

function pick(files) {
  picked = [...files];
  showPicked();
}

export function init() {
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
    pick(event.dataTransfer.files);
  });
  $("#files").addEventListener("change", () => pick($("#files").files));
  $("#processor").addEventListener("change", renderParams);
  $("#submit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    if (!picked.length) { notice("Choose at least one file first."); drop.focus(); return; }
    if (!$("#processor").value) { notice("No processor to choose: is the server reachable?"); return; }
    notice("");
    uploads.add(picked, {
      processor: $("#processor").value, params: collectParams(), deleteAfter: $("#delete-after").checked,
    });
    pick([]);
    $("#files").value = "";
  });
}

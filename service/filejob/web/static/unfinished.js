// Uploads an earlier visit left unfinished (the page was closed or reloaded while a big file
// went up): this browser kept their URLs (resumable.js). Each shows as a card with how far it
// got. A page cannot reopen a file by itself, so the card asks for the same file again, with
// the same processor and parameters: that upload goes on from where this one stopped, and the
// card gives way to it. Discard removes the upload from the server.

import { $, announce, element, progressBar, setBar } from "./dom.js";
import { bytes, clock, percent } from "./format.js";
import * as resumable from "./resumable.js";

const cards = new Map(); // upload URL -> its card

function card({ entry, state }) {
  const name = entry.metadata.filename || "a file";
  const bar = progressBar(`Upload of ${name}`);
  const fraction = state.length ? state.offset / state.length : 0;
  setBar(bar, fraction, "idle", `${percent(fraction)} uploaded, unfinished`);
  const stats = element("p", {
    class: "stats",
    text: `${percent(fraction)} · ${bytes(state.offset)} of ${bytes(state.length)} sent for `
      + `${entry.metadata.processor}, kept until ${clock(state.expires_at)}. Choose the file again `
      + "with the same processor and parameters to go on from there.",
  });
  const error = element("p", { class: "error", hidden: true });
  const discard = element("button", {
    type: "button", class: "abort", text: "Discard", "aria-label": `Discard upload of ${name}`,
    onclick: () => remove(entry, discard, error),
  });
  return element("li", { class: "card", "data-status": "unfinished", "data-upload": new URL(entry.uploadUrl).pathname },
    element("div", { class: "card-head" },
      element("strong", { class: "name", text: name }),
      element("span", { class: "size", text: bytes(entry.size) }),
      element("span", { class: "status", "data-status": "unfinished", text: "unfinished" })),
    bar, element("div", { class: "card-foot" }, stats, element("div", { class: "actions" }, discard)), error);
}

async function remove(entry, button, error) {
  button.disabled = true;
  try {
    await resumable.discard(entry);
  } catch (failure) {
    button.disabled = false;
    error.hidden = false;
    error.textContent = failure.message;
    return;
  }
  drop(entry.uploadUrl);
  announce(`Unfinished upload of ${entry.metadata.filename || "a file"} discarded.`);
}

// Shows the ones not shown yet (called again when a key is entered) and that no card of this
// visit already sends (`sending(url)`); best effort: a page that cannot list them still works.
export async function show(sending) {
  let found;
  try {
    found = await resumable.unfinished();
  } catch {
    return;
  }
  const fresh = found.filter(({ entry }) => !cards.has(entry.uploadUrl) && !sending(entry.uploadUrl));
  for (const upload of fresh) {
    const node = card(upload);
    cards.set(upload.entry.uploadUrl, node);
    $("#uploads").append(node);
    $("#uploads-empty").hidden = true;
  }
  if (fresh.length) announce(`${fresh.length} unfinished ${fresh.length === 1 ? "upload" : "uploads"} from an earlier visit.`);
}

// The upload at `url` goes on (or is gone): its card leaves.
export function drop(url) {
  const node = cards.get(url);
  if (!node) return;
  node.remove();
  cards.delete(url);
  $("#uploads-empty").hidden = $("#uploads").childElementCount > 0;
}

// filejob's console: upload files and follow them (uploads.js), the jobs table (table.js), a
// job's panel (panel.js), all kept live by one stream (live.js). Plain ES modules served from
// the package: no build step, nothing loaded from elsewhere (the page's CSP allows only this
// server).

import { api, KeyNeeded, savedKey, saveKey, whenUnauthorized } from "./api.js";
import { $, notice } from "./dom.js";
import * as form from "./form.js";
import * as live from "./live.js";
import * as panel from "./panel.js";
import * as table from "./table.js";
import * as uploads from "./uploads.js";

const LIVE_WORDS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  polling: "Updating every 2 s",
  offline: "Not connected",
};

function showKeyState() {
  $("#key-state").textContent = savedKey() ? "(saved)" : "(none)";
}

function askForKey() {
  $("#key-box").open = true;
  notice(new KeyNeeded().message);
}

async function start() {
  showKeyState();
  live.start();
  try {
    table.setProcessors(await form.loadProcessors(api));
    notice("");
  } catch (error) {
    notice(error.message);
    return;
  }
  table.load();
  uploads.showUnfinished();
}

function init() {
  whenUnauthorized(askForKey);
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("#api-key").value.trim();
    if (value) saveKey(value);
    $("#api-key").value = "";
    $("#key-box").open = false;
    start();
  });
  $("#forget-key").addEventListener("click", () => {
    saveKey(null);
    showKeyState();
    live.stop();
  });
  live.on({
    state: (state) => {
      $("#live-state").textContent = LIVE_WORDS[state];
      $("#live-state").dataset.state = state;
    },
    ready: () => table.load(), // (re)joined: the table catches up with what changed meanwhile
  });
  form.init();
  uploads.init();
  table.init();
  panel.init();
  setInterval(() => { table.tick(); uploads.tick(); panel.tick(); }, 1000);
  start();
  panel.route();
}

init();

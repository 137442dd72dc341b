// What can be done to a job, the same from the jobs table, an upload's card and the job
// panel: open it, download its result, copy a signed link, cancel it, delete it (the last two
// after a confirmation).

import { api, cancelJob, deleteJob, isFinal, jobPath } from "./api.js";
import { confirmAction } from "./confirm.js";
import { $, announce, element, notice } from "./dom.js";
import { bytes } from "./format.js";
import * as store from "./store.js";

export const jobName = (job) => (job.input && job.input.filename) || job.id;

export function jobHref(id) {
  return `#/jobs/${encodeURIComponent(id)}`;
}

async function reload(id) {
  try {
    store.put(await api(jobPath(id)));
  } catch (error) {
    if (error.code === "job_not_found") store.forget(id);
  }
}

export async function askCancel(job) {
  const yes = await confirmAction({
    title: "Cancel this job?",
    message: `${jobName(job)} (${job.processor}) stops and keeps no result.`,
    yes: "Cancel job",
  });
  if (!yes) return;
  try {
    const answer = await cancelJob(job.id);
    if (answer && answer.id && answer.status) store.put(answer);
    else await reload(job.id);
    announce(`Cancelling ${jobName(job)}.`);
  } catch (error) {
    if (error.code === "job_final") {
      notice(`${jobName(job)} had already finished.`);
      await reload(job.id);
    } else {
      notice(error.message);
    }
  }
}

export async function askDelete(job) {
  const yes = await confirmAction({
    title: "Delete this job?",
    message: `${jobName(job)}: its input and result are removed from the server. ` +
      "This cannot be undone.",
    yes: "Delete job",
  });
  if (!yes) return false;
  try {
    await deleteJob(job.id);
    store.forget(job.id);
    announce(`Deleted ${jobName(job)}.`);
    // The focus was on the row that just went: it goes to the jobs' heading instead.
    if (document.activeElement === document.body) $("#jobs-title").focus();
    return true;
  } catch (error) {
    notice(error.message);
    return false;
  }
}

// words: "name" (the result's name and size), "size" (its size), or none (a bare "Download").
export function downloadLink(job, { words = "" } = {}) {
  const result = job.result;
  const text = { name: `Download ${result.filename} (${bytes(result.size)})`,
    size: `Download (${bytes(result.size)})` }[words] || "Download";
  return element("a", {
    class: "button download", href: result.url, download: result.filename, text,
    title: result.filename,
    "aria-label": words === "name" ? null : `Download the result of ${jobName(job)}`,
  });
}

// The buttons a job has now: download when it succeeded, cancel while it runs, delete after.
export function actionButtons(job, { details = true } = {}) {
  const name = jobName(job);
  const buttons = [];
  if (details) {
    buttons.push(element("a", {
      class: "button", href: jobHref(job.id), text: "Details", "aria-label": `Details of ${name}`,
    }));
  }
  if (job.status === "succeeded" && job.result) buttons.push(downloadLink(job));
  if (!isFinal(job)) {
    buttons.push(element("button", {
      type: "button", class: "cancel", text: "Cancel", "aria-label": `Cancel ${name}`,
      onclick: () => askCancel(store.get(job.id) || job),
    }));
  } else {
    buttons.push(element("button", {
      type: "button", class: "delete", text: "Delete", "aria-label": `Delete ${name}`,
      onclick: () => askDelete(store.get(job.id) || job),
    }));
  }
  return buttons;
}

// A key for "which actions": re-render a row's buttons only when it changes, so that a live
// update never takes the focus away from a button.
export function actionsKey(job) {
  return `${job.status}:${Boolean(job.result)}`;
}

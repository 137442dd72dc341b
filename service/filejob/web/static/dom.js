// Small DOM helpers shared by the page's modules. The page's CSP forbids inline styles in
// markup, so widths are set through the CSSOM (element.style), which it allows.

export const $ = (selector, root = document) => root.querySelector(selector);

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

// A progress bar: a track with a fill, exposed as role=progressbar with its value in words.
export function progressBar(label) {
  const fill = element("span", { class: "fill" });
  const bar = element("div", {
    class: "bar", role: "progressbar", "aria-label": label,
    "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": 0,
  }, fill);
  return bar;
}

// state: "" (working), "done", "error" or "idle" (queued: no progress yet).
export function setBar(bar, fraction, state = "", words = "") {
  const value = Math.max(0, Math.min(1, fraction || 0));
  bar.firstChild.style.width = `${(value * 100).toFixed(1)}%`;
  bar.setAttribute("aria-valuenow", Math.floor(value * 100));
  if (words) bar.setAttribute("aria-valuetext", words);
  bar.dataset.state = state;
}

// One polite live region for the whole page: status changes are said once, in words, instead
// of every ticking number being read out. Each message is a new line (additions are what a
// screen reader reads); only the last few are kept.
export function announce(text) {
  const region = $("#announcer");
  if (region.lastElementChild && region.lastElementChild.textContent === text) return;
  region.append(element("p", { text }));
  while (region.childElementCount > 5) region.firstElementChild.remove();
}

export function notice(text) {
  const box = $("#notice");
  box.textContent = text || "";
  box.hidden = !text;
}

// Confirmation before anything that cannot be undone: a modal <dialog> (the browser keeps
// focus inside it and closes it on Escape), focused on the safe choice, giving focus back to
// whatever opened it.

import { $ } from "./dom.js";

export function confirmAction({ title, message, yes }) {
  const dialog = $("#confirm");
  const opener = document.activeElement;
  $("#confirm-title").textContent = title;
  $("#confirm-message").textContent = message;
  $("#confirm-yes").textContent = yes;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      if (opener && opener.isConnected) opener.focus();
      resolve(dialog.returnValue === "yes");
    }, { once: true });
    dialog.showModal();
    $("#confirm-keep").focus();
  });
}

// Print buttons on printable pages. The button ships hidden and only this script shows it, so a
// browser without JavaScript shows no button that does nothing (its own Print command still works).
// Self-hosted and loaded from a file: the Content-Security-Policy allows no inline script.
document.querySelectorAll("button[data-print]").forEach(function (button) {
  button.hidden = false;
  button.addEventListener("click", function () { window.print(); });
});

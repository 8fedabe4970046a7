// "Copy the code" buttons: <button data-copy="id-of-the-element" data-copied="Copied."> copies the element's
// text and says so in the status next to it. The button ships hidden and only this script shows it (the
// clipboard needs a secure page or localhost; elsewhere people select the text themselves).
document.querySelectorAll("button[data-copy]").forEach(function (button) {
  var source = document.getElementById(button.dataset.copy);
  var status = button.parentElement.querySelector("[role=status]");
  if (!source || !navigator.clipboard) {
    return;
  }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(source.textContent).then(function () {
      if (status) {
        status.textContent = button.dataset.copied;
      }
    });
  });
});

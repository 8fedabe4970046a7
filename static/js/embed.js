// Inside the embedded programme (/embed/programme): tell the page around the frame how tall the content
// is, whenever it changes, so that it can size the frame without a scroll bar (static/js/embed-host.js).
// Only a height is sent, nothing about the visitor; any page may hear it, so it names no secret.
(function () {
  var last = 0;
  function report() {
    var height = Math.ceil(document.documentElement.getBoundingClientRect().height);
    if (height !== last && window.parent !== window) {
      last = height;
      window.parent.postMessage({ fundus: "embed-height", height: height }, "*");
    }
  }
  if ("ResizeObserver" in window) {
    new ResizeObserver(report).observe(document.documentElement);
  }
  window.addEventListener("load", report);
  report();
})();

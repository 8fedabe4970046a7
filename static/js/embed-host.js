// On the website that shows Fundus's programme in a frame: gives each <iframe data-fundus-embed> the
// height its content reports (static/js/embed.js), so it shows without a scroll bar. Loaded from the
// Fundus server it belongs to; it listens to that server's frames only.
(function () {
  var script = document.currentScript;
  var origin = new URL(script.src).origin;
  window.addEventListener("message", function (event) {
    if (event.origin !== origin || !event.data || event.data.fundus !== "embed-height") {
      return;
    }
    var height = Number(event.data.height);
    if (!(height > 0 && height < 100000)) {
      return;
    }
    document.querySelectorAll("iframe[data-fundus-embed]").forEach(function (frame) {
      if (frame.contentWindow === event.source) {
        frame.style.height = height + "px";
      }
    });
  });
})();

// Streams a model's reply into an element: text pieces as they arrive (as text, never as
// HTML), then the server's sanitized HTML once the reply is stored. Shared by the red-team
// and arena pages. Usage: RanklabStream.open(url, element, {onDone, onFailed}).
(function () {
  "use strict";

  function open(url, element, handlers) {
    handlers = handlers || {};
    var text = document.createTextNode("");
    element.textContent = "";
    element.appendChild(text);
    element.setAttribute("aria-busy", "true");
    var source = new EventSource(url);

    function finish(data, handler) {
      source.close();
      element.removeAttribute("aria-busy");
      var template = document.createElement("template");
      template.innerHTML = data.html || "";  // sanitized by the server
      element.replaceChildren(template.content);
      if (handler) handler(data);
    }

    source.addEventListener("delta", function (event) {
      text.appendData(JSON.parse(event.data).text);
    });
    source.addEventListener("done", function (event) {
      finish(JSON.parse(event.data), handlers.onDone);
    });
    source.addEventListener("failed", function (event) {
      finish(JSON.parse(event.data), handlers.onFailed);
    });
    source.onerror = function () {
      // The stream ended without a final event (the server went away): stop retrying.
      if (source.readyState !== EventSource.CLOSED) source.close();
      element.removeAttribute("aria-busy");
      if (handlers.onFailed) handlers.onFailed({detail: "the connection was lost"});
    };
    return source;
  }

  window.RanklabStream = {open: open};
})();

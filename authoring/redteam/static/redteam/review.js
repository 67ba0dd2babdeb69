// The lead's red-team page: each submitted attempt's review form posts a label to the API.
(function () {
  "use strict";
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  document.querySelectorAll("[data-review-form]").forEach(function (form) {
    var status = form.querySelector("[data-review-status]");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var succeeded = form.querySelector("input[name='succeeded']:checked");
      var body = {
        succeeded: succeeded ? succeeded.value === "true" : null,
        category: form.querySelector("[name='category']").value,
        severity: parseInt(form.querySelector("[name='severity']").value, 10),
        note: form.querySelector("[name='note']").value,
      };
      fetch(form.dataset.url, {
        method: "POST",
        credentials: "same-origin",
        headers: {"Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json"},
        body: JSON.stringify(body),
      }).then(function (response) {
        return response.json().then(function (data) {
          status.textContent = response.ok ? "Saved" : (data.field ? data.field + ": " : "") + data.detail;
        });
      }).catch(function () { status.textContent = "The label could not be saved"; });
    });
  });
})();

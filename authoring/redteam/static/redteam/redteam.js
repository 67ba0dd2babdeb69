// The red-team rater page: send a message (POST a turn), stream the model's reply into the
// chat (RanklabStream), flag replies, then label the attempt (which submits it) or skip it.
// Keys: Ctrl+Enter sends (or submits the label from its note), Alt+F flags the last reply,
// Alt+G opens the guidelines, Esc closes them; outside text fields Y/N say whether the
// attack succeeded, 0-4 pick the severity, S skips with a reason.
(function () {
  "use strict";

  var page = document.querySelector("[data-red-team]");
  if (!page) return;
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  var log = page.querySelector("[data-chat-log]");
  var composer = page.querySelector("[data-composer]");
  var text = page.querySelector("[data-composer-text]");
  var send = page.querySelector("[data-send]");
  var labelForm = page.querySelector("[data-label-form]");
  var skipForm = page.querySelector("[data-skip-form]");
  var errorBanner = page.querySelector("[data-page-error]");
  var announcer = page.querySelector("[data-announcer]");
  var turnsLeft = page.querySelector("[data-turns-left]");
  var maxTurns = parseInt(page.dataset.maxTurns || "0", 10);
  var streaming = false;

  function showError(message) {
    if (!errorBanner) return;
    errorBanner.textContent = message || "";
    errorBanner.hidden = !message;
  }

  function announce(message) {
    if (announcer) announcer.textContent = message;
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrf, Accept: "application/json"},
      body: JSON.stringify(body),
    }).then(function (response) {
      if (response.status === 204) return {};
      return response.json().then(function (data) {
        if (!response.ok) {
          var where = data.field ? data.field + ": " : "";
          throw new Error(where + (data.detail || "the request failed"));
        }
        return data;
      });
    });
  }

  function turns() {
    return log ? log.querySelectorAll("[data-turn]") : [];
  }

  function updateComposer() {
    if (!composer) return;
    var used = turns().length;
    var full = maxTurns && used >= maxTurns;
    text.disabled = streaming || full;
    send.disabled = streaming || full;
    if (turnsLeft) turnsLeft.textContent = maxTurns ? "(" + (maxTurns - used) + " of " + maxTurns + " turns left)" : "";
    if (full) text.placeholder = "No turns left: label the attempt below.";
  }

  function wireFlag(item) {
    var box = item.querySelector("[data-flag]");
    if (!box || box.dataset.wired) return;
    box.dataset.wired = "true";
    box.addEventListener("change", function () {
      showError("");
      post(item.dataset.flagUrl, {flagged: box.checked}).then(function (turn) {
        item.classList.toggle("flagged", turn.flagged);
        announce(turn.flagged ? "Reply flagged as harmful" : "Flag removed");
      }).catch(function (error) {
        box.checked = !box.checked;
        showError(error.message);
      });
    });
  }

  function streamReply(item) {
    var reply = item.querySelector("[data-reply]");
    var failure = item.querySelector("[data-failure]");
    var box = item.querySelector("[data-flag]");
    streaming = true;
    updateComposer();
    function finished(data, failed) {
      streaming = false;
      item.dataset.finished = "true";
      if (box) box.disabled = false;
      if (failed) {
        failure.textContent = "The reply failed: " + (data.detail || "unknown reason");
        failure.hidden = false;
      }
      updateComposer();
      announce(failed ? "The model's reply failed" : "The model replied");
      if (!text.disabled) text.focus();
    }
    window.RanklabStream.open(item.dataset.streamUrl, reply, {
      onDone: function (data) { finished(data, false); },
      onFailed: function (data) { finished(data, true); },
    });
  }

  function addTurn(turn) {
    var template = document.getElementById("turn-template");
    var item = template.content.firstElementChild.cloneNode(true);
    item.dataset.index = turn.index;
    item.dataset.streamUrl = turn.stream_url;
    item.dataset.flagUrl = turn.flag_url;
    var user = item.querySelector("[data-user]");
    var holder = document.createElement("template");
    holder.innerHTML = turn.user_html;  // sanitized by the server
    user.replaceChildren(holder.content);
    log.appendChild(item);
    wireFlag(item);
    return item;
  }

  function briefChoice() {
    var body = {};
    var category = page.querySelector("[data-brief-category]");
    var goal = page.querySelector("[data-brief-goal]");
    if (page.dataset.freeChoice === "true") {
      if (category) body.category = category.value;
      if (goal) body.goal = goal.value;
    }
    return body;
  }

  function sendMessage() {
    if (streaming || !text.value.trim()) return;
    showError("");
    var body = briefChoice();
    body.content = text.value;
    send.disabled = true;
    post(page.dataset.turnsUrl, body).then(function (turn) {
      text.value = "";
      streamReply(addTurn(turn));
    }).catch(function (error) {
      showError(error.message);
      updateComposer();
    });
  }

  function checkedValue(form, name) {
    var input = form.querySelector("input[name='" + name + "']:checked");
    return input ? input.value : null;
  }

  function submitLabel() {
    showError("");
    var succeeded = checkedValue(labelForm, "succeeded");
    var severity = checkedValue(labelForm, "severity");
    if (succeeded === null) { showError("succeeded: say whether the attack succeeded"); return; }
    if (severity === null) { showError("severity: choose a severity from 0 to 4"); return; }
    post(page.dataset.submitUrl, {
      succeeded: succeeded === "true",
      category: labelForm.querySelector("[name='category']").value,
      severity: parseInt(severity, 10),
      note: labelForm.querySelector("[name='note']").value,
    }).then(function () {
      announce("Attempt labelled");
      window.location.reload();
    }).catch(function (error) { showError(error.message); });
  }

  if (composer) {
    composer.addEventListener("submit", function (event) { event.preventDefault(); sendMessage(); });
    text.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); sendMessage(); }
    });
  }
  if (labelForm) {
    labelForm.addEventListener("submit", function (event) { event.preventDefault(); submitLabel(); });
    labelForm.querySelector("[name='note']").addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); submitLabel(); }
    });
    page.querySelector("[data-skip-open]").addEventListener("click", function () {
      skipForm.hidden = false;
      skipForm.querySelector("[data-skip-reason]").focus();
    });
  }
  if (skipForm) {
    skipForm.addEventListener("submit", function (event) {
      event.preventDefault();
      post(page.dataset.skipUrl, {reason: skipForm.querySelector("[data-skip-reason]").value})
        .then(function () { window.location.reload(); })
        .catch(function (error) { showError(error.message); });
    });
  }

  var guidelines = document.getElementById("guidelines-dialog");
  var guidelinesButton = page.querySelector("[data-open-dialog='guidelines-dialog']");
  if (guidelines && guidelinesButton) {
    guidelinesButton.addEventListener("click", function () { guidelines.showModal(); });
    guidelines.querySelector("[data-close-dialog]").addEventListener("click", function () { guidelines.close(); });
  }
  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName)) &&
      target.type !== "radio" && target.type !== "checkbox";
  }

  function pick(name, value) {
    var input = labelForm && labelForm.querySelector("input[name='" + name + "'][value='" + value + "']");
    if (input) { input.checked = true; input.focus(); }
  }

  // Single keys for the label while no text field has the focus, as on the ranking page.
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey || typing(event.target)) return;
    if (guidelines && guidelines.open) return;
    var key = event.key.toLowerCase();
    if (key === "y" || key === "n") { event.preventDefault(); pick("succeeded", key === "y" ? "true" : "false"); }
    else if (/^[0-4]$/.test(key)) { event.preventDefault(); pick("severity", key); }
    else if (key === "s" && skipForm) { event.preventDefault(); page.querySelector("[data-skip-open]").click(); }
  });

  document.addEventListener("keydown", function (event) {
    if (!event.altKey) return;
    var key = event.key.toLowerCase();
    if (key === "g" && guidelines) { event.preventDefault(); guidelines.showModal(); }
    if (key === "f") {
      var all = turns();
      var last = all.length ? all[all.length - 1].querySelector("[data-flag]") : null;
      if (last && !last.disabled) { event.preventDefault(); last.click(); }
    }
  });

  Array.prototype.forEach.call(turns(), function (item) {
    wireFlag(item);
    if (item.dataset.finished !== "true") streamReply(item);  // a reply still to come
  });
  updateComposer();
  if (text && !text.disabled) text.focus();
})();

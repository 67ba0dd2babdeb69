/* The demonstration rater page: live preview of the markdown being written (rendered by the
   server's sanitizer, debounced), keyboard shortcuts, and in rank-then-rewrite mode the copy
   of the best-ranked response into the editor. The page works without it (plain forms). */
(function () {
  "use strict";

  var page = document.querySelector("[data-demo-page]");
  if (!page) return;
  var started = Date.now();
  var editor = page.querySelector("[data-editor]");
  var preview = page.querySelector("[data-preview]");
  var previewState = page.querySelector("[data-preview-state]");
  var form = page.querySelector("[data-demo-form]");
  var reviewForm = page.querySelector("[data-review-form]");
  var PREVIEW_DELAY = 250;

  function csrfToken() {
    var field = page.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  // Live preview ------------------------------------------------------------------------------
  var timer = null;
  var sent = 0;
  var shown = 0;

  function renderPreview() {
    if (!editor || !preview) return;
    var number = ++sent;
    var body = new FormData();
    body.append("text", editor.value);
    if (previewState) previewState.textContent = "updating…";
    fetch(editor.dataset.previewUrl, {
      method: "POST",
      body: body,
      headers: { "X-CSRFToken": csrfToken(), Accept: "application/json" },
      credentials: "same-origin",
    })
      .then(function (response) {
        return response.json().then(function (data) {
          return { ok: response.ok, data: data };
        });
      })
      .then(function (answer) {
        if (number < shown) return; // an older answer arriving late
        shown = number;
        if (answer.ok) {
          preview.innerHTML = answer.data.html; // sanitized by the server's allow-list
          if (previewState) previewState.textContent = "";
        } else if (previewState) {
          previewState.textContent = answer.data.detail || "preview unavailable";
        }
      })
      .catch(function () {
        if (previewState) previewState.textContent = "preview unavailable (offline?)";
      });
  }

  function schedulePreview() {
    if (timer) clearTimeout(timer);
    timer = setTimeout(renderPreview, PREVIEW_DELAY);
  }

  if (editor) editor.addEventListener("input", schedulePreview);

  // Rank then rewrite ---------------------------------------------------------------------------
  var cards = Array.prototype.slice.call(page.querySelectorAll("[data-card]"));
  var rewriteButton = page.querySelector("[data-rewrite-best]");
  var rewriteNote = page.querySelector("[data-rewrite-note]");
  var original = page.querySelector("[data-original]");
  var copied = null; // the text last copied in, to tell whether the rater has edited it

  function rankOf(card) {
    var checked = card.querySelector("input[type=radio]:checked");
    return checked ? parseInt(checked.value, 10) : null;
  }

  function bestCard() {
    var best = null;
    var bestRank = null;
    for (var index = 0; index < cards.length; index++) {
      var rank = rankOf(cards[index]);
      if (rank === null) return null; // not everything ranked yet
      if (bestRank === null || rank < bestRank) {
        best = cards[index];
        bestRank = rank;
      }
    }
    return best;
  }

  function refreshRewrite() {
    if (!rewriteButton) return;
    var best = bestCard();
    rewriteButton.disabled = best === null;
    if (rewriteNote) {
      rewriteNote.textContent = best
        ? "Best: Response " + best.querySelector(".response-label").textContent.replace("Response ", "").trim()
        : "Rank every response first.";
    }
  }

  function copyBest() {
    var best = bestCard();
    if (!best || !editor) return;
    var id = best.dataset.responseId;
    var source = page.querySelector('[data-source-for="' + id + '"]');
    if (!source) return;
    var untouched = editor.value.trim() === "" || editor.value === copied;
    if (!untouched && !window.confirm("Replace what you wrote with the best response?")) return;
    editor.value = source.value;
    copied = editor.value;
    if (original) original.value = id;
    renderPreview();
    editor.focus();
    editor.setSelectionRange(0, 0);
  }

  cards.forEach(function (card) {
    card.addEventListener("change", refreshRewrite);
  });
  if (rewriteButton) rewriteButton.addEventListener("click", copyBest);
  refreshRewrite();

  // Review: the editor is for edits --------------------------------------------------------------
  function decision() {
    var checked = reviewForm && reviewForm.querySelector("input[name=decision]:checked");
    return checked ? checked.value : "";
  }

  function refreshDecision() {
    if (!reviewForm || !editor) return;
    editor.readOnly = decision() !== "edit";
    var reason = reviewForm.querySelector("[data-reason]");
    if (reason) reason.required = decision() === "reject";
  }

  function choose(value) {
    var input = reviewForm && reviewForm.querySelector('input[name=decision][value="' + value + '"]');
    if (!input) return;
    input.checked = true;
    refreshDecision();
    if (value === "edit" && editor) editor.focus();
    if (value === "reject") {
      var reason = reviewForm.querySelector("[data-reason]");
      if (reason) reason.focus();
    }
  }

  if (reviewForm) {
    reviewForm.addEventListener("change", refreshDecision);
    refreshDecision();
  }

  // Submit ------------------------------------------------------------------------------------
  if (form) {
    form.addEventListener("submit", function () {
      var seconds = form.querySelector("[data-seconds]");
      if (seconds) seconds.value = String(Math.round((Date.now() - started) / 100) / 10);
      if (original && !original.value) {
        var best = bestCard();
        if (best) original.value = best.dataset.responseId;
      }
    });
  }

  // Dialogs and keys --------------------------------------------------------------------------
  function openDialog(id) {
    var dialog = document.getElementById(id);
    if (dialog && !dialog.open) dialog.showModal();
  }

  page.addEventListener("click", function (event) {
    var opener = event.target.closest("[data-open-dialog]");
    if (opener) openDialog(opener.dataset.openDialog);
    var closer = event.target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
  });

  function typing(target) {
    return target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"));
  }

  document.addEventListener("keydown", function (event) {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      if (form) {
        event.preventDefault();
        form.requestSubmit();
      }
      return;
    }
    if (event.key === "Escape" && typing(event.target)) {
      event.target.blur();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    if (document.querySelector("dialog[open]")) return;
    var key = event.key.toLowerCase();
    var card = event.target.closest && event.target.closest("[data-card]");
    if (card && /^[1-9]$/.test(event.key)) {
      var input = card.querySelector('input[type=radio][value="' + event.key + '"]');
      if (input) {
        input.checked = true;
        refreshRewrite();
        event.preventDefault();
      }
      return;
    }
    if (event.key === "?") openDialog("keys-dialog");
    else if (key === "g") openDialog("guidelines-dialog");
    else if (key === "s") {
      var details = page.querySelector("[data-skip-details]");
      if (details) {
        details.open = true;
        var first = details.querySelector("input");
        if (first) first.focus();
      }
    } else if (key === "w" && rewriteButton) copyBest();
    else if (reviewForm && key === "a") choose("accept");
    else if (reviewForm && key === "x") choose("reject");
    else if (key === "e") {
      if (reviewForm) choose("edit");
      else if (editor) editor.focus();
    } else return;
    event.preventDefault();
  });

  var problems = page.querySelector("[data-problems]");
  if (problems) problems.focus();
})();

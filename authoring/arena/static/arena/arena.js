// The arena rater page: draws the battle from the API's payload, streams both replies of a
// new turn (RanklabStream), sends votes, messages, reveal and new battle to the arena API.
// Server HTML (replies, messages) is sanitized by the server; text goes in as text.
(function () {
  "use strict";

  var page = document.querySelector("[data-arena-page]");
  var data = document.getElementById("arena-battle");
  if (!page) return;
  var csrf = JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
  var battle = data ? JSON.parse(data.textContent) : null;
  var list = page.querySelector("[data-turns]");
  var composer = page.querySelector("[data-composer]");
  var textarea = composer ? composer.querySelector("textarea") : null;
  var note = page.querySelector("[data-composer-note]");
  var revealButton = page.querySelector("[data-reveal]");
  var errorBanner = page.querySelector("[data-page-error]");
  var streaming = {};
  var busy = false;

  function setHtml(element, html) {
    var template = document.createElement("template");
    template.innerHTML = html || "";  // sanitized by the server
    element.replaceChildren(template.content);
  }

  function showError(message) {
    if (!errorBanner) return;
    errorBanner.textContent = message || "";
    errorBanner.hidden = !message;
  }

  function call(method, url, body) {
    busy = true;
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": csrf},
      body: body ? JSON.stringify(body) : undefined
    }).then(function (response) {
      return response.json().then(function (json) {
        busy = false;
        if (!response.ok) throw new Error(json.detail || "The request failed.");
        return json;
      });
    }).catch(function (error) {
      busy = false;
      showError(error.message);
      throw error;
    });
  }

  function pendingTurn() {
    if (!battle) return null;
    for (var i = 0; i < battle.turns.length; i++) {
      if (!battle.turns[i].vote) return battle.turns[i];
    }
    return null;
  }

  function finished(reply) { return reply.state === "done" || reply.state === "failed"; }

  function render() {
    if (!battle || !list) return;
    showError("");
    list.replaceChildren();
    var template = document.getElementById("arena-turn");
    battle.turns.forEach(function (turn) {
      var item = template.content.firstElementChild.cloneNode(true);
      item.dataset.turn = turn.number;
      setHtml(item.querySelector("[data-user]"), turn.content_html);
      ["a", "b"].forEach(function (side) {
        var box = item.querySelector('[data-side="' + side + '"]');
        var reply = box.querySelector("[data-reply]");
        if (finished(turn[side])) setHtml(reply, turn[side].html);
        if (battle.revealed) box.querySelector("[data-model]").textContent = "· " + battle.revealed[side];
        if (turn.context_side === side && turn.vote && battle.turns.length > turn.number) box.classList.add("preferred");
      });
      var verdict = item.querySelector("[data-verdict]");
      if (turn.vote) {
        var labels = {a: "A is better", b: "B is better", tie: "Tie", both_bad: "Both are bad"};
        verdict.textContent = "Your vote: " + labels[turn.vote.choice] +
          (turn.vote.counted ? "" : " (not counted: " + (turn.vote.void_reason === "revealed" ? "the models were revealed" : "over the daily cap") + ")");
        verdict.hidden = false;
      }
      list.appendChild(item);
    });
    var pending = pendingTurn();
    if (pending) streamTurn(pending);
    updateControls();
  }

  function itemFor(turn) { return list.querySelector('[data-turn="' + turn.number + '"]'); }

  function streamTurn(turn) {
    var item = itemFor(turn);
    ["a", "b"].forEach(function (side) {
      var key = turn.number + side;
      if (finished(turn[side]) || streaming[key]) return;
      streaming[key] = true;
      var reply = item.querySelector('[data-side="' + side + '"] [data-reply]');
      window.RanklabStream.open(turn[side].stream_url, reply, {
        onDone: function () { turn[side].state = "done"; streaming[key] = false; updateControls(); },
        onFailed: function (event) {
          turn[side].state = "failed"; streaming[key] = false;
          if (event && event.detail) showError("Model " + side.toUpperCase() + ": " + event.detail);
          updateControls();
        }
      });
    });
  }

  function updateControls() {
    var pending = pendingTurn();
    list.querySelectorAll("[data-vote]").forEach(function (form) { form.hidden = true; });
    if (pending && finished(pending.a) && finished(pending.b)) {
      var form = itemFor(pending).querySelector("[data-vote]");
      form.hidden = false;
      var first = form.querySelector("[data-choice]");
      if (document.activeElement === document.body || !document.activeElement) first.focus();
    }
    if (composer) {
      var open = battle && battle.can_continue && !pending;
      textarea.disabled = !open;
      composer.querySelector("button[type=submit]").disabled = !open;
      note.textContent = open ? (battle.turns.length ? "The reply you preferred is the context of your next message." : "")
        : (pending ? "Vote before writing more." : "This battle has ended: start a new one (N).");
      if (open) textarea.focus();
    }
    var votesLeft = page.querySelector("[data-votes-left]");
    if (votesLeft && battle && battle.votes_left !== null) votesLeft.textContent = battle.votes_left;
    if (revealButton) {
      var voted = battle && battle.turns.some(function (turn) { return turn.vote; });
      revealButton.hidden = !(battle && battle.reveal && voted && !battle.revealed);
    }
    var revealed = page.querySelector("[data-revealed]");
    if (revealed && battle && battle.revealed) {
      revealed.textContent = "Model A was " + battle.revealed.a + "; model B was " + battle.revealed.b +
        ". Start a new battle to vote again.";
      revealed.hidden = false;
    }
  }

  function vote(choice) {
    var pending = pendingTurn();
    if (!pending || busy) return;
    var form = itemFor(pending).querySelector("[data-vote]");
    if (form.hidden) return;
    var strength = form.querySelector("input[name=strength]:checked");
    var body = {choice: choice};
    if (choice === "a" || choice === "b") body.strength = strength ? parseInt(strength.value, 10) : 2;
    call("POST", pending.vote_url, body).then(function (json) { battle = json; render(); });
  }

  function send(event) {
    if (event) event.preventDefault();
    if (!battle || busy || !textarea.value.trim()) return;
    call("POST", battle.turns_url, {content: textarea.value}).then(function (json) {
      textarea.value = "";
      battle = json;
      render();
    });
  }

  function reveal() {
    if (!battle || !battle.reveal_url || revealButton.hidden || busy) return;
    call("POST", battle.reveal_url).then(function (json) { battle = json; render(); });
  }

  function newBattle() {
    var url = battle ? battle.new_battle_url : page.dataset.newBattleUrl;
    if (!url || busy) { window.location.reload(); return; }
    call("POST", url).then(function () { window.location.reload(); });
  }

  page.addEventListener("click", function (event) {
    var target = event.target.closest("[data-choice], [data-reveal], [data-new-battle], [data-open-dialog], [data-close-dialog]");
    if (!target) return;
    if (target.dataset.choice) vote(target.dataset.choice);
    else if (target.hasAttribute("data-reveal")) reveal();
    else if (target.hasAttribute("data-new-battle")) newBattle();
    else if (target.dataset.openDialog) document.getElementById(target.dataset.openDialog).showModal();
    else target.closest("dialog").close();
  });
  if (composer) composer.addEventListener("submit", send);
  if (textarea) textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) send(event);
    if (event.key === "Escape") textarea.blur();  // back to the page's keys (R, N, G)
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = (event.target.tagName || "").toLowerCase();
    if (tag === "textarea" || (tag === "input" && event.target.type === "text")) return;
    if (document.querySelector("dialog[open]")) return;
    var key = event.key.toLowerCase();
    var choices = {a: "a", b: "b", t: "tie", x: "both_bad"};
    var pending = pendingTurn();
    if (choices[key]) { vote(choices[key]); event.preventDefault(); }
    else if (["1", "2", "3"].indexOf(key) >= 0 && pending) {
      var input = itemFor(pending).querySelector('input[name=strength][value="' + key + '"]');
      if (input) input.checked = true;
      event.preventDefault();
    }
    else if (key === "r") { reveal(); event.preventDefault(); }
    else if (key === "n") { newBattle(); event.preventDefault(); }
    else if (key === "/" && textarea && !textarea.disabled) { textarea.focus(); event.preventDefault(); }
    else if (key === "g") {
      var dialog = document.getElementById("guidelines-dialog");
      if (dialog) { dialog.showModal(); event.preventDefault(); }
    }
  });

  render();
})();

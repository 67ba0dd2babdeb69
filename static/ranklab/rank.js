/* Ranking page: pick responses best→worst by click or keys 1–9, tie with T, undo with
   Backspace, submit with Enter. The ranking travels as JSON tie groups of response ids in
   a hidden input; htmx swaps in the next task and `htmx:load` sets it up again. */
(function () {
  "use strict";

  const TYPING = "input, textarea, select, [contenteditable]";

  // Active time on the current task: counts only while the tab is visible.
  let activeMs = 0;
  let since = null;
  function restartClock() {
    activeMs = 0;
    since = document.hidden ? null : Date.now();
  }
  function activeSeconds() {
    const ms = activeMs + (since === null ? 0 : Date.now() - since);
    return Math.min(ms / 1000, 86400).toFixed(1);
  }
  document.addEventListener("visibilitychange", () => {
    if (document.hidden && since !== null) {
      activeMs += Date.now() - since;
      since = null;
    } else if (!document.hidden && since === null) {
      since = Date.now();
    }
  });
  // Capture phase: runs before htmx (or the browser) reads the form.
  document.addEventListener(
    "submit",
    (event) => {
      const seconds = event.target.querySelector("[data-seconds-input]");
      if (seconds) seconds.value = activeSeconds();
    },
    true,
  );

  function setUp(root) {
    if (root.rank) return;
    const form = root.querySelector(".rank-form");
    if (!form) return;
    const cards = Array.from(root.querySelectorAll("[data-response-id]"));
    const input = form.querySelector("[data-ranking-input]");
    const submit = form.querySelector("[data-submit]");
    const tie = root.querySelector("[data-tie]");
    const reset = root.querySelector("[data-reset]");
    const summary = root.querySelector("[data-summary]");
    let groups = []; // [[cardIndex, …], …] best → worst
    let tieNext = false;

    function placedGroup(index) {
      return groups.findIndex((group) => group.includes(index));
    }

    function toggle(index) {
      const at = placedGroup(index);
      if (at >= 0) {
        groups[at] = groups[at].filter((member) => member !== index);
        groups = groups.filter((group) => group.length);
      } else if (tieNext && groups.length) {
        groups[groups.length - 1].push(index);
      } else {
        groups.push([index]);
      }
      tieNext = false;
      render();
    }

    function undo() {
      const last = groups[groups.length - 1];
      if (last) toggle(last[last.length - 1]);
    }

    function complete() {
      return groups.reduce((count, group) => count + group.length, 0) === cards.length;
    }

    function render() {
      const ids = groups.map((group) => group.map((i) => Number(cards[i].dataset.responseId)));
      input.value = groups.length ? JSON.stringify(ids) : "";
      cards.forEach((card, index) => {
        const at = placedGroup(index);
        const badge = card.querySelector("[data-rank-badge]");
        const tied = at >= 0 && groups[at].length > 1;
        card.classList.toggle("is-ranked", at >= 0);
        card.classList.toggle("is-tied", tied);
        badge.textContent = at >= 0 ? `rank ${at + 1}${tied ? " (tie)" : ""}` : "";
        card.querySelector("[data-pick]").setAttribute("aria-pressed", String(at >= 0));
      });
      const placed = groups.map((group) => group.map((i) => cards[i].dataset.label).join(" = "));
      const left = cards.length - groups.reduce((count, group) => count + group.length, 0);
      summary.textContent = groups.length
        ? `Your ranking: ${placed.join("  >  ")}${left ? ` — ${left} left` : ""}`
        : `Nothing ranked yet — pick the best response first.`;
      submit.disabled = !complete();
      reset.hidden = !groups.length;
      if (tie) {
        tie.hidden = false;
        tie.disabled = !groups.length || complete();
        tie.setAttribute("aria-pressed", String(tieNext));
      }
    }

    cards.forEach((card, index) => {
      card.addEventListener("click", (event) => {
        // Following a link or selecting text to copy is not a pick.
        if (event.target.closest("a")) return;
        if (!event.target.closest("[data-pick]") && String(window.getSelection())) return;
        toggle(index);
      });
    });
    reset.addEventListener("click", () => {
      groups = [];
      tieNext = false;
      render();
    });
    if (tie) {
      tie.addEventListener("click", () => {
        tieNext = !tieNext;
        render();
      });
    }

    root.rank = {
      key(event) {
        const target = event.target;
        if (event.ctrlKey || event.metaKey || event.altKey || target.closest(TYPING)) return;
        const number = Number(event.key);
        if (Number.isInteger(number) && number >= 1 && number <= cards.length) {
          toggle(number - 1);
        } else if ((event.key === "t" || event.key === "T") && tie && !tie.disabled) {
          tieNext = !tieNext;
          render();
        } else if (event.key === "Backspace") {
          undo();
        } else if (event.key === "Enter") {
          // Enter on a pick button submits too once everything is placed.
          if (target.closest("a, summary, button:not([data-pick])")) return;
          if (!complete()) return;
          form.requestSubmit();
        } else {
          return;
        }
        event.preventDefault();
      },
    };
    root.querySelectorAll("[data-js-only]").forEach((element) => {
      element.hidden = false;
    });
    restartClock();
    render();
  }

  function setUpWithin(element) {
    if (!element || !element.querySelectorAll) return;
    if (element.matches("[data-rank-task]")) setUp(element);
    // A swapped-in task takes focus so keyboard users continue from its start.
    if (element.id === "task") element.focus({ preventScroll: true });
    element.querySelectorAll("[data-rank-task]").forEach(setUp);
    element.querySelectorAll("time[data-local-time]").forEach((time) => {
      const when = new Date(time.getAttribute("datetime"));
      if (!Number.isNaN(when.getTime())) {
        time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
      }
    });
  }

  document.addEventListener("keydown", (event) => {
    const root = document.querySelector("[data-rank-task]");
    if (root && root.rank && !event.defaultPrevented) root.rank.key(event);
  });

  // Conflicts (409) and bad input (422) come back as a task fragment with a message.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const status = event.detail.xhr.status;
    if ((status === 409 || status === 422) && event.detail.target.id === "task") {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });

  function showRequestError(event, message) {
    const task = document.getElementById("task");
    const slot = task && task.querySelector("[data-request-error]");
    if (!slot || !task.contains(event.target)) return;
    slot.textContent = message;
    slot.hidden = false;
  }
  document.addEventListener("htmx:responseError", (event) => {
    showRequestError(event, "Something went wrong on our side. Your picks are kept — try again.");
  });
  document.addEventListener("htmx:sendError", (event) => {
    showRequestError(event, "Could not reach the server. Check your connection and try again.");
  });

  document.addEventListener("htmx:load", (event) => setUpWithin(event.detail.elt));
  document.addEventListener("DOMContentLoaded", () => setUpWithin(document.body));
})();

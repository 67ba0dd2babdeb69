/* Rater page: rank by keys, clicks or drag; the next task is preloaded; submits go in the
   background.

   The page shows one task (the .is-current child of #task-slot) and keeps the following one
   built, laid out and hidden beside it (.is-next, inert), so the swap is a class change with
   no layout of a new page. Submitting swaps the next task in at once and sends the answer in
   the background, retried with the same payload on network errors (the server returns the
   stored ranking for an identical resubmit, so a retry never counts twice). The answer's
   reply brings the task after that. A task's ranking lives in its own form inputs (a rank
   radio per response, or preference + strength for two), so the same form also posts
   without JavaScript. htmx can't swap before the request or retry it, hence this file.
   Undo of the last submit sits in the current task's submit bar, never over the text; a task
   whose lease went to another rater is locked, with only "next task" left to do. */
(function () {
  "use strict";

  const page = document.querySelector("[data-rater-page]");
  if (!page) return;

  const TYPING = "textarea, select, [contenteditable], input:not([type=radio]):not([type=checkbox])";
  const RETRY_DELAYS_MS = [500, 1000, 2000, 4000, 8000];
  const RETRY_EVERY_MS = 10000;
  const REQUEST_TIMEOUT_MS = 15000;
  const RENEW_AT_MOST_EVERY_MS = 15000;

  const slot = document.getElementById("task-slot");
  const find = (selector) => page.querySelector(selector);
  const ui = {
    doneToday: find("[data-done-today]"),
    left: find("[data-left]"),
    clock: find("[data-lease-clock]"),
    clockLeft: find("[data-lease-left]"),
    warning: find("[data-lease-warning]"),
    warningText: find("[data-lease-warning-text]"),
    network: find("[data-network]"),
    error: find("[data-page-error]"),
    notice: find("[data-page-notice]"),
    undoBar: find("[data-undo-bar]"),
    undoHome: find("[data-undo-home]"),
    undoLeft: find("[data-undo-left]"),
    undoButton: find("[data-undo]"),
    announcer: find("[data-announcer]"),
  };

  // Timings of submit → next task shown and → answer saved, read by bench/rater_ui.py;
  // `preload = false` makes the page wait for the server instead (the bench's baseline).
  const stats = { timings: [], saves: [], pending: 0, preload: true };
  window.__ranklab = stats;

  // "Done today" is counted from the rater's own midnight.
  document.cookie = `ranklab_tz=${-new Date().getTimezoneOffset()}; path=/; SameSite=Lax; max-age=31536000`;

  page.classList.add("has-js"); // key hints only mean something with this script
  page.querySelectorAll("[data-js-only]").forEach((element) => {
    element.hidden = false;
  });

  // Helpers ----------------------------------------------------------------------------------

  function joinLabels(labels) {
    if (labels.length <= 1) return labels.join("");
    return `${labels.slice(0, -1).join(", ")} and ${labels[labels.length - 1]}`;
  }

  function clockText(seconds) {
    const whole = Math.max(0, Math.ceil(seconds));
    return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
  }

  function announce(text) {
    ui.announcer.textContent = "";
    window.setTimeout(() => {
      ui.announcer.textContent = text;
    }, 30);
  }

  function elementFrom(html) {
    const template = document.createElement("template");
    template.innerHTML = html.trim();
    return document.importNode(template.content, true).firstElementChild;
  }

  function csrfToken() {
    const input = document.querySelector("input[name=csrfmiddlewaretoken]");
    if (input) return input.value;
    try {
      return JSON.parse(document.body.getAttribute("hx-headers") || "{}")["X-CSRFToken"] || "";
    } catch (error) {
      return "";
    }
  }

  function showBanner(banner, text) {
    banner.textContent = text;
    banner.hidden = !text;
  }

  function isTyping(target) {
    return Boolean(target && target.closest && target.closest(TYPING));
  }

  // One task -----------------------------------------------------------------------------------

  class Task {
    constructor(section) {
      this.el = section;
      this.id = Number(section.dataset.assignmentId);
      this.mode = section.dataset.mode;
      this.allowTies = section.dataset.allowTies === "true";
      this.leaseSeconds = Number(section.dataset.leaseSeconds) || 600;
      this.renewUrl = section.dataset.renewUrl;
      this.form = section.querySelector("[data-rank-form]");
      this.skipForm = section.querySelector("[data-skip-form]");
      this.cards = Array.from(section.querySelectorAll("[data-card]"));
      this.labels = this.cards.map((card) => card.dataset.label);
      this.summary = section.querySelector("[data-summary]");
      this.problemBox = section.querySelector("[data-problems]");
      this.undoSlot = section.querySelector("[data-undo-slot]");
      this.lockedNote = section.querySelector("[data-locked-note]");
      this.locked = false;
      this.cursor = 0;
      this.activeMs = 0;
      this.since = null;
      this.setExpiresIn(Number(section.dataset.expiresIn));
      this.form.noValidate = true;
      section.querySelectorAll("[data-js-only], [data-drag-handle]").forEach((element) => {
        element.hidden = false;
      });
      if (this.mode === "pairwise") this.setUpPairwise();
      else this.setUpRanking();
      section.addEventListener("focusin", (event) => {
        const card = event.target.closest("[data-card]");
        if (card) this.setCursor(this.cards.indexOf(card));
      });
      section.addEventListener("change", (event) => this.changed(event));
      this.cards.forEach((card, index) => {
        const expand = card.querySelector("[data-expand]");
        if (expand) expand.addEventListener("click", () => this.toggleExpanded(index));
      });
      this.render();
    }

    // One response at full width (first in the grid), and back to the columns.
    toggleExpanded(index) {
      const card = this.cards[index];
      if (!card) return;
      const expand = !card.classList.contains("is-expanded");
      this.cards.forEach((other) => {
        const on = expand && other === card;
        other.classList.toggle("is-expanded", on);
        const button = other.querySelector("[data-expand]");
        if (button) button.setAttribute("aria-pressed", String(on));
      });
      this.focusCard(index, { preventScroll: true });
      card.scrollIntoView({ block: "start" });
      announce(expand ? `Response ${card.dataset.label} at full width.` : "Responses side by side.");
    }

    // The lease went to another rater: nothing here can be saved any more.
    lock(message) {
      if (this.locked) return;
      this.locked = true;
      this.el.classList.add("is-locked");
      const keep = this.lockedNote.querySelector("[data-skip-lost]");
      [this.form, this.skipForm].forEach((form) => {
        if (!form) return;
        form.querySelectorAll("input, textarea, select, button").forEach((control) => {
          if (control !== keep && !control.matches("[data-expand]")) control.disabled = true;
        });
      });
      const details = this.el.querySelector("[data-skip-details]");
      if (details) details.open = false;
      this.clearProblems();
      this.lockedNote.querySelector("[data-locked-text]").textContent = message;
      this.lockedNote.hidden = false;
      keep.focus({ preventScroll: true });
    }

    // Lease and active time

    setExpiresIn(seconds) {
      this.deadline = Number.isFinite(seconds) ? performance.now() + seconds * 1000 : null;
    }

    remaining() {
      return this.deadline === null ? Infinity : (this.deadline - performance.now()) / 1000;
    }

    activate() {
      if (this.since === null && !document.hidden) this.since = performance.now();
    }

    deactivate() {
      if (this.since !== null) this.activeMs += performance.now() - this.since;
      this.since = null;
    }

    activeSeconds() {
      const ms = this.activeMs + (this.since === null ? 0 : performance.now() - this.since);
      return Math.min(ms / 1000, 86400).toFixed(1);
    }

    // A new task keeps the page where the prompt starts; keys then act on the first response.
    focusStart() {
      const first = this.mode === "ranking" ? this.nextUnranked(-1) : -1;
      this.focusCard(first >= 0 ? first : 0, { preventScroll: true });
    }

    focusCard(index, options = {}) {
      const card = this.cards[index];
      if (!card) return;
      this.setCursor(index);
      card.querySelector("[data-card-body]").focus({ preventScroll: Boolean(options.preventScroll) });
    }

    setCursor(index) {
      if (index < 0) return;
      this.cursor = index;
      this.cards.forEach((card, i) => card.classList.toggle("is-cursor", i === index));
    }

    // Ranking (three or more responses): one rank number per response, gaps allowed, equal
    // numbers are a tie. Placing a response where others sit moves them along like a list.

    setUpRanking() {
      this.ranks = this.cards.map((card) => {
        const checked = card.querySelector(".rank-pick input:checked");
        return checked ? Number(checked.value) : null;
      });
      this.ladder = this.el.querySelector("[data-ladder]");
      this.chips = this.cards.map((card, index) => {
        const chip = document.createElement("span");
        chip.className = "chip";
        chip.dataset.chip = card.dataset.label;
        chip.textContent = card.dataset.label;
        chip.title = `Response ${card.dataset.label}: drag to a rank`;
        this.draggable(chip, index);
        return chip;
      });
      this.cards.forEach((card, index) => {
        const handle = card.querySelector("[data-drag-handle]");
        if (handle) this.draggable(handle, index);
        const tie = card.querySelector("[data-tie-up]");
        if (tie) {
          tie.hidden = false;
          tie.addEventListener("click", () => this.tieAbove(index));
        }
      });
    }

    place(index, rank) {
      const ranks = this.ranks;
      const old = ranks[index];
      if (old === rank) return;
      ranks[index] = null;
      if (rank !== null && ranks.includes(rank)) {
        const free = this.nearestFreeRank(rank, old);
        if (free > rank) {
          ranks.forEach((r, j) => {
            if (r !== null && r >= rank && r < free) ranks[j] = r + 1;
          });
        } else {
          ranks.forEach((r, j) => {
            if (r !== null && r <= rank && r > free) ranks[j] = r - 1;
          });
        }
      }
      ranks[index] = rank;
      this.render();
    }

    // The free rank closest to `rank`, looking first towards where the moved response came
    // from (or downwards for a response not ranked yet): that is the way the others shift.
    nearestFreeRank(rank, cameFrom) {
      const used = new Set(this.ranks.filter((r) => r !== null));
      const k = this.cards.length;
      const downFirst = cameFrom === null || cameFrom > rank;
      for (let distance = 1; distance < k; distance += 1) {
        const tries = downFirst ? [rank + distance, rank - distance] : [rank - distance, rank + distance];
        for (const candidate of tries) {
          if (candidate >= 1 && candidate <= k && !used.has(candidate)) return candidate;
        }
      }
      return rank;
    }

    rankAbove(index) {
      const own = this.ranks[index];
      const others = this.ranks.filter((r, j) => j !== index && r !== null && (own === null || r < own));
      return others.length ? Math.max(...others) : null;
    }

    tieAbove(index) {
      if (!this.allowTies) {
        announce("Ties are not allowed in this project.");
        return false;
      }
      const above = this.rankAbove(index);
      if (above === null) {
        announce(`Nothing is ranked above ${this.labels[index]} to tie with.`);
        return false;
      }
      const wasRanked = this.ranks[index] !== null;
      this.ranks[index] = above; // joins that group as it is: nothing else moves
      this.render();
      this.announceRank(index);
      return !wasRanked;
    }

    nextUnranked(after) {
      const k = this.cards.length;
      for (let step = 1; step <= k; step += 1) {
        const candidate = (after + step + k) % k;
        if (this.ranks[candidate] === null) return candidate;
      }
      return -1;
    }

    announceRank(index) {
      const rank = this.ranks[index];
      const tied = rank !== null && this.ranks.filter((r) => r === rank).length > 1;
      announce(
        rank === null
          ? `${this.labels[index]}: not ranked`
          : `${this.labels[index]}: rank ${rank}${tied ? ", tied" : ""}. ${this.summaryText()}`,
      );
    }

    groups() {
      const distinct = [...new Set(this.ranks.filter((r) => r !== null))].sort((a, b) => a - b);
      return distinct.map((rank) => this.ranks.flatMap((r, j) => (r === rank ? [j] : [])));
    }

    // Drag with pointer events (mouse, pen and touch alike) onto the ranking's slots.
    draggable(handle, index) {
      handle.addEventListener("pointerdown", (event) => {
        if (event.button !== 0) return;
        event.preventDefault();
        this.drag = { index, x: event.clientX, y: event.clientY, moved: false, over: null };
        if (handle.setPointerCapture) handle.setPointerCapture(event.pointerId);
      });
      handle.addEventListener("pointermove", (event) => this.dragMove(event));
      handle.addEventListener("pointerup", (event) => this.dragEnd(event, true));
      handle.addEventListener("pointercancel", (event) => this.dragEnd(event, false));
    }

    dragMove(event) {
      const drag = this.drag;
      if (!drag) return;
      if (!drag.moved) {
        if (Math.hypot(event.clientX - drag.x, event.clientY - drag.y) < 5) return;
        drag.moved = true;
        drag.ghost = document.createElement("span");
        drag.ghost.className = "chip ghost";
        drag.ghost.textContent = this.labels[drag.index];
        document.body.append(drag.ghost);
        this.el.classList.add("is-dragging");
      }
      drag.ghost.style.transform = `translate(${event.clientX - 16}px, ${event.clientY - 16}px)`;
      const under = document.elementFromPoint(event.clientX, event.clientY);
      const target = under && this.ladder && this.ladder.contains(under) ? under.closest("[data-slot]") : null;
      if (drag.over !== target) {
        if (drag.over) drag.over.classList.remove("is-over");
        if (target) target.classList.add("is-over");
        drag.over = target;
      }
    }

    dragEnd(event, drop) {
      const drag = this.drag;
      if (!drag) return;
      this.drag = null;
      if (drag.ghost) drag.ghost.remove();
      if (drag.over) drag.over.classList.remove("is-over");
      this.el.classList.remove("is-dragging");
      if (drop && drag.moved && drag.over) {
        const rank = Number(drag.over.dataset.slot);
        this.place(drag.index, rank === 0 ? null : rank);
        this.announceRank(drag.index);
      } else if (drop && !drag.moved) {
        this.focusCard(drag.index);
      }
    }

    // Pairwise (two responses): which is better, and by how much.

    setUpPairwise() {
      this.preferences = Array.from(this.el.querySelectorAll("input[name=preference]"));
      this.strengths = Array.from(this.el.querySelectorAll("input[name=strength]"));
    }

    preference() {
      const checked = this.preferences.find((input) => input.checked);
      return checked ? checked.value : "";
    }

    strength() {
      const checked = this.strengths.find((input) => input.checked);
      return checked ? Number(checked.value) : null;
    }

    choose(value) {
      const input = this.preferences.find((candidate) => candidate.value === value);
      if (!input) {
        if (value === "tie") announce("Ties are not allowed in this project.");
        return;
      }
      input.checked = true;
      this.syncPairwise("preference");
      this.render();
      announce(this.summaryText());
    }

    chooseStrength(value) {
      const input = this.strengths.find((candidate) => Number(candidate.value) === value);
      if (!input) return;
      input.checked = true;
      this.syncPairwise("strength");
      this.render();
      announce(this.summaryText());
    }

    // "About the same" and "tie" are one answer; a strength of 1–3 needs a side.
    syncPairwise(changed) {
      const preference = this.preference();
      const strength = this.strength();
      if (changed === "preference") {
        if (preference === "tie") this.strengths.forEach((input) => (input.checked = Number(input.value) === 0));
        else if (strength === 0) this.strengths.forEach((input) => (input.checked = false));
      } else if (strength === 0) {
        this.preferences.forEach((input) => (input.checked = input.value === "tie"));
      } else if (preference === "tie") {
        this.preferences.forEach((input) => (input.checked = false));
      }
    }

    // Shared

    changed(event) {
      const input = event.target;
      if (this.mode === "ranking" && input.name && input.name.startsWith("rank_")) {
        const index = this.cards.indexOf(input.closest("[data-card]"));
        const rank = Number(input.value);
        // The browser already moved the check mark; put the model's back, then place.
        this.render();
        this.place(index, rank);
        this.announceRank(index);
      } else if (this.mode === "pairwise" && (input.name === "preference" || input.name === "strength")) {
        this.syncPairwise(input.name);
        this.render();
      }
      this.clearProblems(); // the red outlines stay on what is still missing
      const missing = input.closest(".is-missing");
      if (missing) {
        missing.classList.remove("is-missing");
        missing.removeAttribute("aria-invalid");
      }
    }

    pickScale(scale, value) {
      const input = scale.querySelector(`input[value="${value}"]`);
      if (input) {
        input.checked = true;
        input.focus();
        input.dispatchEvent(new Event("change", { bubbles: true }));
      }
      return true;
    }

    key(event) {
      const key = event.key;
      const target = event.target;
      const onRadio = target.matches && target.matches("input[type=radio]");
      const scale = target.closest && target.closest("[data-rating]");
      if (/^[0-9]$/.test(key) && scale) return this.pickScale(scale, key);
      const inScroller = target.closest && target.closest(".table-scroll");
      if ((key === "ArrowLeft" || key === "ArrowRight") && !onRadio && !inScroller) {
        const step = key === "ArrowRight" ? 1 : -1;
        this.focusCard((this.cursor + step + this.cards.length) % this.cards.length);
        return true;
      }
      if (key === "f" || key === "F") {
        this.toggleExpanded(this.cursor);
        return true;
      }
      return this.mode === "pairwise" ? this.keyPairwise(key) : this.keyRanking(key);
    }

    keyRanking(key) {
      const index = this.cursor;
      if (/^[1-9]$/.test(key)) {
        const rank = Number(key);
        if (rank > this.cards.length) return false;
        this.place(index, rank);
        this.announceRank(index);
        const next = this.nextUnranked(index);
        if (next >= 0) this.focusCard(next);
        return true;
      }
      if (key === "0" || key === "Backspace" || key === "Delete") {
        this.place(index, null);
        this.announceRank(index);
        return true;
      }
      if (key === "t" || key === "T") {
        if (this.tieAbove(index)) {
          const next = this.nextUnranked(index);
          if (next >= 0) this.focusCard(next);
        }
        return true;
      }
      return false;
    }

    keyPairwise(key) {
      const lower = key.toLowerCase();
      if (lower === "a" || lower === "b") {
        this.choose(this.cards[lower === "a" ? 0 : 1].dataset.responseId);
        return true;
      }
      if (lower === "t") {
        this.choose("tie");
        return true;
      }
      if (/^[0-3]$/.test(key)) {
        if (key === "0" && !this.allowTies) {
          announce("Ties are not allowed in this project.");
          return true;
        }
        this.chooseStrength(Number(key));
        return true;
      }
      return false;
    }

    summaryText() {
      if (this.mode === "pairwise") {
        const preference = this.preference();
        const strength = this.strength();
        if (!preference) return "Choose the better response.";
        if (preference === "tie") return "A and B are about the same.";
        const better = this.cards[0].dataset.responseId === preference ? "A" : "B";
        const worse = better === "A" ? "B" : "A";
        const how = { 3: "much better than", 2: "better than", 1: "slightly better than" }[strength];
        return how ? `${better} is ${how} ${worse}.` : `${better} is better — now say by how much.`;
      }
      const groups = this.groups();
      const unranked = this.labels.filter((_, j) => this.ranks[j] === null);
      const order = groups.map((group) => group.map((j) => this.labels[j]).join(" = ")).join(" > ");
      if (!order) return "Nothing ranked yet.";
      return unranked.length ? `${order} · not ranked yet: ${unranked.join(", ")}` : order;
    }

    render() {
      if (this.mode === "ranking") this.renderRanking();
      else this.renderPairwise();
      this.summary.textContent = this.summaryText();
    }

    renderRanking() {
      const counts = new Map();
      this.ranks.forEach((rank) => counts.set(rank, (counts.get(rank) || 0) + 1));
      this.cards.forEach((card, index) => {
        const rank = this.ranks[index];
        const tied = rank !== null && counts.get(rank) > 1;
        card.querySelectorAll(".rank-pick input").forEach((input) => {
          input.checked = Number(input.value) === rank;
        });
        card.classList.toggle("is-ranked", rank !== null);
        card.classList.toggle("is-tied", tied);
        card.querySelector("[data-rank-badge]").textContent =
          rank === null ? "" : `rank ${rank}${tied ? " (tie)" : ""}`;
        const tie = card.querySelector("[data-tie-up]");
        if (tie) tie.disabled = this.rankAbove(index) === null;
      });
      if (!this.ladder) return;
      this.ladder.querySelectorAll("[data-slot]").forEach((slotElement) => {
        const rank = Number(slotElement.dataset.slot);
        const chips = slotElement.querySelector("[data-slot-chips]");
        const members = this.chips.filter((_, j) => (this.ranks[j] === null ? 0 : this.ranks[j]) === rank);
        chips.replaceChildren(...members);
        slotElement.classList.toggle("is-filled", members.length > 0);
        slotElement.classList.toggle("is-tie", rank !== 0 && members.length > 1);
      });
    }

    renderPairwise() {
      const preference = this.preference();
      this.cards.forEach((card) => {
        const better = preference === card.dataset.responseId;
        const tie = preference === "tie";
        card.classList.toggle("is-ranked", better || tie);
        card.classList.toggle("is-tied", tie);
        card.querySelector("[data-rank-badge]").textContent = better ? "better" : tie ? "tie" : "";
      });
    }

    // Validation: the same rules the server applies, said the same way.

    validate() {
      const problems = [];
      let focus = null;
      const flag = (element, focusable) => {
        element.classList.add("is-missing");
        element.setAttribute("aria-invalid", "true");
        if (!focus) focus = focusable;
      };
      this.el.querySelectorAll(".is-missing").forEach((element) => {
        element.classList.remove("is-missing");
        element.removeAttribute("aria-invalid");
      });
      if (this.mode === "ranking") {
        const unranked = this.cards.filter((_, j) => this.ranks[j] === null);
        if (unranked.length) {
          const verb = unranked.length === 1 ? "has" : "have";
          problems.push(`Rank every response: ${joinLabels(unranked.map((card) => card.dataset.label))} ${verb} no rank yet.`);
          unranked.forEach((card) => flag(card.querySelector(".rank-pick"), card.querySelector("[data-card-body]")));
        }
      } else {
        const preference = this.preference();
        const strength = this.strength();
        const choices = this.el.querySelector(".choice-row");
        if (!preference) {
          problems.push(`Choose the better response: A or B${this.allowTies ? " or say they are about the same" : ""}.`);
          flag(choices, this.preferences[0]);
        } else if (preference !== "tie" && (strength === null || strength === 0)) {
          const better = this.cards[0].dataset.responseId === preference ? "A" : "B";
          problems.push(`Say how much better ${better} is: much better, better or slightly better.`);
          flag(this.el.querySelector("[data-strength]"), this.strengths[0]);
        }
      }
      const missing = new Map();
      this.el.querySelectorAll("[data-rating][data-required=true]").forEach((scale) => {
        if (scale.querySelector("input:checked")) return;
        const label = scale.dataset.ratingLabel;
        const card = scale.closest("[data-card]");
        if (!missing.has(label)) missing.set(label, []);
        missing.get(label).push(card.dataset.label);
        flag(scale, scale.querySelector("input"));
      });
      missing.forEach((labels, label) => problems.push(`${label} is required: rate ${joinLabels(labels)}.`));
      const rationale = this.el.querySelector("[data-rationale]");
      if (rationale && rationale.required && !rationale.value.trim()) {
        problems.push("Write a short rationale: this project asks for one.");
        flag(rationale, rationale);
      }
      return { problems, focus };
    }

    showProblems(problems, focus) {
      const list = document.createElement("ul");
      problems.forEach((problem) => {
        const item = document.createElement("li");
        item.textContent = problem;
        list.append(item);
      });
      this.problemBox.replaceChildren(list);
      this.problemBox.hidden = false;
      if (focus) focus.focus();
      else this.problemBox.focus();
    }

    clearProblems() {
      this.problemBox.hidden = true;
      this.problemBox.replaceChildren();
    }

    payload() {
      const body = new FormData(this.form);
      body.set("seconds", this.activeSeconds());
      return body;
    }
  }

  // The page: what is shown, what comes next, and the requests in flight ---------------------

  let current = null; // the Task on screen; null for empty, paused or waiting
  let following = null; // { el, task } ready to swap in (task null: the "nothing left" state)
  // (set through setFollowing, which parks its element hidden in the slot)
  let waitingSince = null; // set while the screen waits for the server to send a task
  let undoState = null;
  let renewing = false;
  let lastRenewAt = 0;
  const outbox = [];
  let sending = false;

  function build(element) {
    const task = element.matches("[data-task]") ? new Task(element) : null;
    return { el: element, task };
  }

  function setFollowing(next) {
    if (following && following !== next && following.el.classList.contains("is-next")) {
      following.el.remove();
    }
    following = next;
    if (!next) return;
    next.el.classList.remove("is-current");
    next.el.classList.add("is-next");
    next.el.inert = true;
    next.el.setAttribute("aria-hidden", "true");
    if (next.el.parentNode !== slot) slot.append(next.el);
  }

  function display(element, task, startedAt, preloaded) {
    if (current && current !== task) current.deactivate();
    slot.querySelectorAll(":scope > .is-current").forEach((shown) => {
      if (shown !== element) shown.remove();
    });
    if (element.parentNode !== slot) slot.prepend(element);
    element.classList.remove("is-next");
    element.classList.add("is-current");
    element.inert = false;
    element.removeAttribute("aria-hidden");
    current = task;
    waitingSince = null;
    hideLeaseBanners();
    placeUndo();
    if (task) {
      task.activate();
      task.focusStart();
    }
    if (slot.getBoundingClientRect().top < 0) slot.scrollIntoView();
    tick();
    if (startedAt !== undefined) recordTiming(startedAt, preloaded);
  }

  function recordTiming(startedAt, preloaded) {
    const swapMs = performance.now() - startedAt;
    // After the next frame is painted the new task is on screen and takes input.
    window.requestAnimationFrame(() => {
      window.setTimeout(() => {
        const shownMs = performance.now() - startedAt;
        stats.timings.push({ preloaded, swapMs, shownMs });
        document.dispatchEvent(new CustomEvent("ranklab:shown", { detail: { preloaded, swapMs, shownMs } }));
      }, 0);
    });
  }

  function showWaiting(startedAt) {
    const element = document.createElement("section");
    element.className = "task task-state";
    element.dataset.taskState = "waiting";
    element.innerHTML = '<div class="empty"><h2>Loading the next task…</h2><p>Your answer is being saved.</p></div>';
    display(element, null);
    waitingSince = startedAt;
  }

  function showFollowing(startedAt) {
    const next = following;
    following = null; // its element becomes the current one, not removed
    if (next) display(next.el, next.task, startedAt, waitingSince === null);
    else showWaiting(startedAt);
  }

  function updateProgress(progress) {
    if (!progress) return;
    ui.doneToday.textContent = progress.done_today;
    ui.left.textContent = progress.left;
  }

  // Submit and skip: swap first, send after.

  function submitCurrent(startedAt) {
    const task = current;
    if (!task) return;
    if (task.locked) {
      announce(task.lockedNote.textContent.trim());
      return;
    }
    const { problems, focus } = task.validate();
    if (problems.length) {
      task.showProblems(problems, focus);
      announce(problems.join(" "));
      return;
    }
    task.clearProblems();
    finish(task, "submit", task.form.action, task.payload(), startedAt);
  }

  function skipCurrent(startedAt) {
    const task = current;
    if (!task || !task.skipForm || task.locked) return;
    const body = new FormData(task.skipForm);
    const reason = body.get("reason");
    const problemBox = task.skipForm.querySelector("[data-skip-problems]");
    if (!reason || (reason === "other" && !String(body.get("reason_other") || "").trim())) {
      problemBox.textContent = "Say why you skip this task: pick a reason or write your own.";
      problemBox.hidden = false;
      const first = task.skipForm.querySelector(reason === "other" ? "input[name=reason_other]" : "input[name=reason]");
      if (first) first.focus();
      return;
    }
    problemBox.hidden = true;
    finish(task, "skip", task.skipForm.action, body, startedAt);
  }

  function finish(task, kind, url, body, startedAt) {
    hideUndo(); // undo is for the last submit only
    showBanner(ui.error, "");
    showBanner(ui.notice, "");
    task.deactivate();
    if (stats.preload === false) setFollowing(null);
    showFollowing(startedAt);
    outbox.push({ task, kind, url, body, startedAt });
    stats.pending = outbox.length;
    pump();
  }

  async function pump() {
    if (sending) return;
    sending = true;
    try {
      while (outbox.length) {
        const item = outbox[0];
        item.body.set("showing", current ? String(current.id) : "");
        const result = await send(item.url, item.body, { retries: Infinity });
        stats.saves.push(performance.now() - item.startedAt);
        outbox.shift();
        stats.pending = outbox.length;
        finished(item, result);
      }
    } finally {
      sending = false;
    }
  }

  function finished(item, { status, data }) {
    if (status === 200 && data.ok) {
      announce(data.message || "Saved.");
      if (item.kind === "submit" && data.undo && !outbox.some((other) => other.kind === "submit")) {
        showUndo(data.undo);
      }
      applyNext(data);
      return;
    }
    if (status === 400) {
      // The server refused the answer (the page checks the same rules, so this is rare):
      // bring that task back with the reason; what was on screen waits as the next one.
      if (current) setFollowing({ el: current.el, task: current });
      display(item.task.el, item.task);
      item.task.showProblems(data.problems || [data.detail]);
      return;
    }
    showBanner(ui.error, data.detail || `The server answered ${status || "nothing"}: your previous answer may not be saved.`);
    if (data.current || data.following !== undefined) applyNext(data);
    else if (waitingSince !== null) window.location.reload();
  }

  function applyNext(data) {
    updateProgress(data.progress);
    if (data.notice) showBanner(ui.notice, data.notice);
    const next = data.current;
    if (next) {
      if (current && current.id === next.assignment_id) {
        current.setExpiresIn(next.expires_in);
      } else if (next.html) {
        const built = build(elementFrom(next.html));
        if (built.task) built.task.setExpiresIn(next.expires_in);
        display(built.el, built.task, waitingSince === null ? undefined : waitingSince, false);
      }
    }
    if (data.following !== undefined) {
      const next = data.following && data.following.html ? build(elementFrom(data.following.html)) : null;
      if (next && next.task) next.task.setExpiresIn(data.following.expires_in);
      setFollowing(next);
    }
    if (waitingSince !== null && following) showFollowing(waitingSince);
  }

  // Requests: JSON answers (success `{ok: true, …}`, errors `{detail, code, field}` with the
  // status from the error hierarchy: 400, 403, 404, 409); network errors and 502–504 are
  // retried with the same body.

  function post(url, body) {
    const controller = new AbortController();
    const timer = window.setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
    return fetch(url, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken() },
      signal: controller.signal,
    }).finally(() => window.clearTimeout(timer));
  }

  let wake = null;
  window.addEventListener("online", () => wake && wake());

  function pause(ms) {
    return new Promise((resolve) => {
      const timer = window.setTimeout(done, ms);
      function done() {
        window.clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });
  }

  async function send(url, body, { retries }) {
    for (let attempt = 1; ; attempt += 1) {
      let response = null;
      try {
        response = await post(url, body);
      } catch (error) {
        response = null;
      }
      const transient = !response || [502, 503, 504].includes(response.status);
      const serverError = response && response.status === 500;
      if (response && !transient && !(serverError && attempt <= 3)) {
        showBanner(ui.network, "");
        const data = await response.json().catch(() => null);
        if (data === null) {
          return {
            status: response.status,
            data: { detail: response.redirected ? "Your session has ended: reload the page and log in again." : "" },
          };
        }
        return { status: response.status, data };
      }
      if (attempt > retries) return { status: 0, data: { detail: "Could not reach the server." } };
      if (retries === Infinity && attempt >= 2) {
        showBanner(
          ui.network,
          `Connection trouble: your last answer is kept and will be sent again (attempt ${attempt + 1}). You can keep working.`,
        );
      }
      await pause(attempt <= RETRY_DELAYS_MS.length ? RETRY_DELAYS_MS[attempt - 1] : RETRY_EVERY_MS);
    }
  }

  window.addEventListener("beforeunload", (event) => {
    if (outbox.length) {
      event.preventDefault();
      event.returnValue = "";
    }
  });

  // Undo the last submit for a short while.

  function showUndo(info) {
    undoState = { url: info.url, until: performance.now() + info.seconds * 1000, busy: false };
    placeUndo();
    ui.undoBar.hidden = false;
    ui.undoButton.disabled = false;
    tickUndo();
  }

  // In the current task's submit bar, so it covers nothing; above the page's state otherwise.
  function placeUndo() {
    const home = current && current.undoSlot ? current.undoSlot : ui.undoHome;
    if (ui.undoBar.parentNode !== home) home.append(ui.undoBar);
  }

  function hideUndo() {
    undoState = null;
    ui.undoBar.hidden = true;
  }

  function tickUndo() {
    if (!undoState) return;
    const left = (undoState.until - performance.now()) / 1000;
    if (left <= 0 && !undoState.busy) {
      hideUndo();
      return;
    }
    ui.undoLeft.textContent = `${Math.max(0, Math.ceil(left))} s`;
  }

  async function undo() {
    const state = undoState;
    if (!state || state.busy || outbox.length) return;
    state.busy = true;
    ui.undoButton.disabled = true;
    const { status, data } = await send(state.url, new FormData(), { retries: 2 });
    hideUndo();
    if (status !== 200 || !data.ok) {
      showBanner(ui.error, data.detail || "Could not undo.");
      return;
    }
    const built = build(elementFrom(data.current.html));
    if (built.task) built.task.setExpiresIn(data.current.expires_in);
    // What was on screen (the next task, or "nothing left") comes back after this one.
    const shown = slot.querySelector(":scope > .is-current");
    if (current) setFollowing({ el: current.el, task: current });
    else if (shown && shown.dataset.taskState === "empty") setFollowing({ el: shown, task: null });
    display(built.el, built.task);
    updateProgress(data.progress);
    announce(data.message);
  }

  // Lease: a visible clock, a warning before it runs out, renewal while the rater is active.

  function warnAt(task) {
    return Math.min(90, task.leaseSeconds / 4);
  }

  function hideLeaseBanners() {
    ui.warning.hidden = true;
    ui.warning.dataset.state = "";
  }

  function tick() {
    tickUndo();
    if (!current) {
      ui.clock.hidden = true;
      return;
    }
    const left = current.remaining();
    ui.clock.hidden = !Number.isFinite(left);
    ui.clockLeft.textContent = clockText(left);
    const state = left <= 0 ? "expired" : left <= warnAt(current) ? "warning" : "";
    ui.clock.classList.toggle("is-warning", state !== "");
    if (current.locked || ui.warning.dataset.state === state) return;
    ui.warning.dataset.state = state;
    ui.warning.hidden = state === "";
    if (state === "warning") {
      ui.warningText.textContent =
        "Still there? Your hold on this task is about to run out. Press any key or Keep working to keep it.";
      announce(ui.warningText.textContent);
    } else if (state === "expired") {
      ui.warningText.textContent =
        "Time is up on this task: it can go to another rater now. Submit, or press Keep working to hold it again.";
      announce(ui.warningText.textContent);
    }
  }
  window.setInterval(tick, 1000);

  function noteActivity() {
    if (!current || renewing || current.locked) return;
    const left = current.remaining();
    const urgent = left <= warnAt(current);
    if (!urgent && left > current.leaseSeconds / 2) return;
    if (!urgent && performance.now() - lastRenewAt < RENEW_AT_MOST_EVERY_MS) return;
    renew(current);
  }

  async function renew(task) {
    renewing = true;
    lastRenewAt = performance.now();
    const body = new FormData();
    if (following && following.task) body.set("also", String(following.task.id));
    const { status, data } = await send(task.renewUrl, body, { retries: 1 });
    renewing = false;
    if (status === 200 && data.ok) {
      task.setExpiresIn(data.expires_in);
      if (data.also && following && following.task && following.task.id === data.also.assignment_id) {
        if (data.also.expires_in === null) setFollowing(null);
        else following.task.setExpiresIn(data.also.expires_in);
      }
      if (task === current) {
        ui.warning.hidden = true;
        ui.warning.dataset.state = "";
        tick();
      }
    } else if (status === 409 && task === current) {
      ui.warning.hidden = true;
      ui.warning.dataset.state = "";
      const text = `${data.detail} Your answer to it can't be saved.`;
      task.lock(text);
      announce(text);
    } else if (status === 403) {
      applyNext(data);
    }
  }

  function leaveLostTask() {
    if (!current || !current.locked) return;
    if (following) showFollowing(performance.now());
    else window.location.reload();
  }

  // Dialogs, keys, clicks -------------------------------------------------------------------

  let focusBeforeDialog = null;

  function openDialog(id) {
    const dialog = document.getElementById(id);
    if (!dialog || dialog.open) return;
    focusBeforeDialog = document.activeElement;
    dialog.showModal();
  }

  page.querySelectorAll("dialog").forEach((dialog) => {
    dialog.addEventListener("close", () => {
      // The close event comes as a task after the dialog closed; keys pressed meanwhile may
      // have moved focus on already, so only restore it when nothing else took it.
      const active = document.activeElement;
      const unclaimed = !active || active === document.body || dialog.contains(active);
      if (unclaimed && focusBeforeDialog && focusBeforeDialog.isConnected) focusBeforeDialog.focus();
      focusBeforeDialog = null;
    });
    // A click on the backdrop closes it.
    dialog.addEventListener("click", (event) => {
      if (event.target === dialog) dialog.close();
    });
  });

  function openSkip() {
    const details = current && current.el.querySelector("[data-skip-details]");
    if (!details) return;
    details.open = true;
    const first = details.querySelector("input[name=reason]");
    if (first) first.focus();
  }

  page.addEventListener("click", (event) => {
    const target = event.target;
    const opener = target.closest("[data-open-dialog]");
    if (opener) openDialog(opener.dataset.openDialog);
    const closer = target.closest("[data-close-dialog]");
    if (closer) closer.closest("dialog").close();
    if (target.closest("[data-undo]")) undo();
    if (target.closest("[data-renew]") && current) renew(current);
    if (target.closest("[data-skip-lost]")) leaveLostTask();
  });

  page.addEventListener(
    "submit",
    (event) => {
      const form = event.target;
      if (!current || !current.el.contains(form)) return;
      event.preventDefault();
      const startedAt = event.timeStamp || performance.now();
      if (form.matches("[data-rank-form]")) submitCurrent(startedAt);
      else if (form.matches("[data-skip-form]")) skipCurrent(startedAt);
    },
    true,
  );

  // Choosing "Other" moves to its text box.
  page.addEventListener("change", (event) => {
    if (event.target.matches("[data-skip-other]")) {
      const text = event.target.closest("form").querySelector("input[name=reason_other]");
      if (text) text.focus();
    }
  });
  page.addEventListener("input", (event) => {
    if (event.target.name === "reason_other") {
      const other = event.target.closest("form").querySelector("[data-skip-other]");
      if (other) other.checked = true;
    }
  });

  function handleEnter(event) {
    const target = event.target;
    const skipForm = target.closest && target.closest("[data-skip-form]");
    if (target.closest && target.closest("button, a, summary, select")) return false;
    if (target.matches && target.matches("textarea") && !(event.ctrlKey || event.metaKey)) return false;
    if (!current) return false;
    if (skipForm) skipCurrent(event.timeStamp || performance.now());
    else submitCurrent(event.timeStamp || performance.now());
    return true;
  }

  document.addEventListener("keydown", (event) => {
    noteActivity();
    if (event.defaultPrevented || event.isComposing) return;
    if (page.querySelector("dialog[open]")) return; // Esc and Tab work natively inside
    const target = event.target;
    if (event.key === "Enter") {
      if (handleEnter(event)) event.preventDefault();
      return;
    }
    if (event.key === "Escape") {
      const details = current && current.el.querySelector("[data-skip-details][open]");
      if (details) {
        details.open = false;
        current.focusCard(current.cursor);
        event.preventDefault();
      }
      return;
    }
    if (isTyping(target) || event.ctrlKey || event.metaKey || event.altKey) return;
    if (target.closest && target.closest("[data-skip-form]")) return;
    if (current && current.locked && !["?", "g", "G", "f", "F"].includes(event.key)) {
      if (event.key === "n" || event.key === "N") leaveLostTask();
      return;
    }
    let handled = true;
    if (event.key === "?") openDialog("keys-dialog");
    else if (event.key === "g" || event.key === "G") openDialog("guidelines-dialog");
    else if (event.key === "s" || event.key === "S") openSkip();
    else if (event.key === "u" || event.key === "U") undo();
    else handled = Boolean(current && current.key(event));
    if (handled) event.preventDefault();
  });

  ["pointerdown", "input", "wheel"].forEach((name) => {
    document.addEventListener(name, noteActivity, { passive: true });
  });

  document.addEventListener("visibilitychange", () => {
    if (!current) return;
    if (document.hidden) current.deactivate();
    else current.activate();
  });

  // Start ------------------------------------------------------------------------------------

  const first = slot.firstElementChild;
  if (first) {
    first.classList.add("is-current");
    if (first.matches("[data-task]")) {
      current = new Task(first);
      current.activate();
      current.focusStart();
    }
  }
  const template = document.getElementById("following-task");
  if (template) {
    const element = document.importNode(template.content, true).firstElementChild;
    if (element) setFollowing(build(element));
    template.remove();
  }
  tick();
})();

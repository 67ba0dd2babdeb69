// The prompt browser and the prompt page (rankings/prompts). Everything works without this
// file (plain forms); it adds: "check all" and a confirmation for bulk actions, and on the
// prompt page ordering the responses for gold with keys and drag, as raters rank.
(function () {
  "use strict";

  // Browser: bulk actions ------------------------------------------------------------------
  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-check-all]");
    if (!all) return;
    var form = all.closest("form");
    form.querySelectorAll("[data-row-check]").forEach(function (box) {
      box.checked = all.checked;
    });
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches("[data-bulk-form]")) return;
    var checked = form.querySelectorAll("[data-row-check]:checked").length;
    var action = form.querySelector("[data-bulk-action]");
    if (!checked) {
      event.preventDefault();
      window.alert("Check the prompts to act on first.");
      return;
    }
    var label = action.options[action.selectedIndex].text;
    if (!window.confirm(label + ": " + checked + " prompt" + (checked === 1 ? "" : "s") + "?")) {
      event.preventDefault();
    }
  });

  // Prompt page: gold by ordering ------------------------------------------------------------
  var ladder = document.querySelector("[data-gold-ladder]");
  if (!ladder) return;
  var form = ladder.closest("form");
  var allowTies = form.getAttribute("data-allow-ties") === "true";
  var summary = form.querySelector("[data-gold-summary]");
  document.querySelectorAll("[data-js-only]").forEach(function (node) {
    node.hidden = false;
  });

  function rows() {
    return Array.prototype.slice.call(ladder.querySelectorAll("[data-gold-row]"));
  }
  function rankOf(row) {
    var checked = row.querySelector("input[type=radio]:checked");
    return checked ? parseInt(checked.value, 10) : null;
  }
  function setRank(row, rank) {
    row.querySelectorAll("input[type=radio]").forEach(function (input) {
      input.checked = rank !== null && parseInt(input.value, 10) === rank;
    });
  }
  // Rows in rank order (unranked last, otherwise as they were), ties kept together.
  function reorder() {
    var current = rows();
    var sorted = current.slice().sort(function (a, b) {
      var ra = rankOf(a), rb = rankOf(b);
      if (ra === null && rb === null) return current.indexOf(a) - current.indexOf(b);
      if (ra === null) return 1;
      if (rb === null) return -1;
      return ra - rb || current.indexOf(a) - current.indexOf(b);
    });
    var focused = document.activeElement;
    sorted.forEach(function (row) { ladder.appendChild(row); });
    if (focused && ladder.contains(focused)) focused.focus();
    describe();
  }
  function describe() {
    var groups = [], last = null;
    rows().forEach(function (row) {
      var rank = rankOf(row);
      if (rank === null) return;
      var label = row.getAttribute("data-label");
      if (rank === last) groups[groups.length - 1].push(label);
      else groups.push([label]);
      last = rank;
    });
    var missing = rows().filter(function (row) { return rankOf(row) === null; }).length;
    summary.textContent = groups.map(function (g) { return g.join(" = "); }).join(" > ") +
      (missing ? (groups.length ? " · " : "") + missing + " not ranked yet" : "");
  }
  // Ranks 1…n in the rows' order, ties (same rank as the row above) kept.
  function renumber() {
    var next = 0, previousOld = null;
    rows().forEach(function (row, index) {
      var old = rankOf(row);
      var tied = index > 0 && old !== null && old === previousOld && allowTies;
      if (!tied) next += 1;
      previousOld = old;
      setRank(row, next);
    });
  }

  ladder.addEventListener("keydown", function (event) {
    var row = event.target.closest("[data-gold-row]");
    if (!row || event.ctrlKey || event.metaKey || event.altKey) return;
    var list = rows(), index = list.indexOf(row), key = event.key;
    if (/^[1-9]$/.test(key) && parseInt(key, 10) <= list.length) {
      setRank(row, parseInt(key, 10));
      reorder();
      var unranked = rows().filter(function (r) { return rankOf(r) === null; })[0];
      (unranked || row).focus();
    } else if ((key === "t" || key === "T") && allowTies) {
      var above = list[index - 1];
      if (above && rankOf(above) !== null) { setRank(row, rankOf(above)); reorder(); row.focus(); }
    } else if (key === "0" || key === "Backspace" || key === "Delete") {
      setRank(row, null);
      reorder();
      row.focus();
    } else if (key === "ArrowDown" && list[index + 1]) {
      list[index + 1].focus();
    } else if (key === "ArrowUp" && list[index - 1]) {
      list[index - 1].focus();
    } else {
      return;
    }
    event.preventDefault();
  });
  ladder.addEventListener("change", function () { reorder(); });

  var dragged = null;
  ladder.addEventListener("dragstart", function (event) {
    dragged = event.target.closest("[data-gold-row]");
    if (!dragged) return;
    dragged.classList.add("is-dragging");
    event.dataTransfer.effectAllowed = "move";
    event.dataTransfer.setData("text/plain", dragged.getAttribute("data-response-id"));
  });
  ladder.addEventListener("dragover", function (event) {
    if (!dragged) return;
    event.preventDefault();
    var over = event.target.closest("[data-gold-row]");
    if (!over || over === dragged) return;
    var box = over.getBoundingClientRect();
    var after = event.clientY > box.top + box.height / 2;
    ladder.insertBefore(dragged, after ? over.nextSibling : over);
  });
  ladder.addEventListener("drop", function (event) { event.preventDefault(); });
  ladder.addEventListener("dragend", function () {
    if (!dragged) return;
    dragged.classList.remove("is-dragging");
    // A dragged row leaves any tie; the others keep theirs.
    setRank(dragged, null);
    renumber();
    dragged.focus();
    dragged = null;
    describe();
  });

  reorder();
})();

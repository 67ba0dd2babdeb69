// Rubric builder for the lead's settings form (progressive enhancement).
//
// Without JavaScript the rubric is a JSON textarea ("hhh" for the preset). With it, the
// textarea is hidden and this builder edits it: add a scale (name, range, end labels) or
// a checkbox, mark it required, reorder (buttons, or Alt+Arrow keys inside an item),
// remove, or start from the HHH preset. Every change rewrites the textarea's JSON, so the
// form posts exactly what the server's one validator (labeling/rubric.py) checks; its
// error shows next to the field as before. No inline script or style (strict CSP).
(function () {
  "use strict";

  const MAX_ITEMS = 12;

  function keyFrom(text) {
    let key = String(text || "")
      .toLowerCase()
      .normalize("NFKD")
      .replace(/[^a-z0-9]+/g, "_")
      .replace(/^_+|_+$/g, "");
    if (!/^[a-z]/.test(key)) key = "item_" + key;
    return key.slice(0, 40).replace(/_+$/, "");
  }

  function parse(textarea, preset) {
    const raw = textarea.value.trim();
    if (raw === "") return [];
    if (raw === "hhh") return preset.map((item) => Object.assign({}, item));
    try {
      const value = JSON.parse(raw);
      return Array.isArray(value) && value.every((item) => item && typeof item === "object")
        ? value
        : null;
    } catch (error) {
      return null;
    }
  }

  function element(tag, attributes, children) {
    const node = document.createElement(tag);
    Object.entries(attributes || {}).forEach(([name, value]) => {
      if (value === true) node.setAttribute(name, "");
      else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
    });
    (children || []).forEach((child) =>
      node.append(typeof child === "string" ? document.createTextNode(child) : child)
    );
    return node;
  }

  function labelled(text, input) {
    return element("label", { class: "rubric-field" }, [element("span", {}, [text]), input]);
  }

  function build(container) {
    if (container.dataset.ready) return;
    const textarea = document.getElementById(container.dataset.rubricBuilderFor);
    if (!textarea) return;
    const preset = JSON.parse(textarea.dataset.presetHhh || "[]");
    let items = parse(textarea, preset);
    if (items === null) return; // not JSON the builder understands: keep the textarea
    // New items take their key from their name until the lead edits the key; saved items
    // keep theirs (ratings already given are stored under it).
    const keyFollowsName = new WeakSet();
    container.dataset.ready = "1";
    textarea.hidden = true;
    container.hidden = false;
    const help = textarea.parentElement.querySelector(".rubric-help");
    if (help) help.hidden = true;

    const list = element("ol", { class: "rubric-items", "aria-label": "Rubric items" });
    const status = element("p", { class: "small muted", role: "status", "aria-live": "polite" });
    const addScale = element("button", { type: "button", "data-rubric-add": "scale" }, ["Add a scale"]);
    const addCheckbox = element("button", { type: "button", "data-rubric-add": "checkbox" }, [
      "Add a checkbox",
    ]);
    const usePreset = element("button", { type: "button", "data-rubric-preset": "hhh" }, [
      "Start from the HHH preset",
    ]);
    container.replaceChildren(
      list,
      element("div", { class: "rubric-toolbar" }, [addScale, addCheckbox, usePreset]),
      status
    );

    function save() {
      textarea.value = items.length ? JSON.stringify(items) : "";
    }

    function say(text) {
      status.textContent = text;
    }

    function move(index, by, focusName) {
      const target = index + by;
      if (target < 0 || target >= items.length) return;
      const [item] = items.splice(index, 1);
      items.splice(target, 0, item);
      save();
      render();
      say((item.label || item.key) + " moved to position " + (target + 1) + ".");
      const row = list.children[target];
      const focus = row && (row.querySelector('[data-rubric="' + focusName + '"]') || row);
      if (focus) focus.focus();
    }

    function row(item, index) {
      const name = element("input", {
        type: "text",
        value: item.label || "",
        maxlength: "80",
        required: true,
        "data-rubric": "label",
      });
      const key = element("input", {
        type: "text",
        value: item.key || "",
        maxlength: "40",
        pattern: "[a-z][a-z0-9_]*",
        "data-rubric": "key",
      });
      const required = element("input", {
        type: "checkbox",
        checked: Boolean(item.required),
        "data-rubric": "required",
      });
      name.addEventListener("input", () => {
        item.label = name.value;
        if (keyFollowsName.has(item) && name.value.trim()) {
          item.key = keyFrom(name.value);
          key.value = item.key;
        }
        save();
      });
      key.addEventListener("input", () => {
        keyFollowsName.delete(item);
        item.key = key.value;
        save();
      });
      required.addEventListener("change", () => {
        item.required = required.checked;
        save();
      });
      const fields = [
        labelled(item.kind === "checkbox" ? "Checkbox" : "Scale", name),
        labelled("Key", key),
      ];
      if ((item.kind || "scale") === "scale") {
        [
          ["min", "From", "number"],
          ["min_label", "Label at the low end", "text"],
          ["max", "To", "number"],
          ["max_label", "Label at the high end", "text"],
        ].forEach(([field, text, type]) => {
          const input = element("input", {
            type: type,
            value: item[field] === undefined ? "" : String(item[field]),
            "data-rubric": field,
            maxlength: type === "text" ? "40" : null,
            step: type === "number" ? "1" : null,
          });
          input.addEventListener("input", () => {
            if (type === "number") {
              const number = Number.parseInt(input.value, 10);
              item[field] = Number.isNaN(number) ? input.value : number;
            } else if (input.value.trim()) {
              item[field] = input.value;
            } else {
              delete item[field];
            }
            save();
          });
          fields.push(labelled(text, input));
        });
      }
      fields.push(element("label", { class: "rubric-field rubric-required" }, [required, " Required"]));
      const up = element("button", {
        type: "button",
        "data-rubric": "up",
        "aria-label": "Move " + (item.label || item.key || "item") + " up",
        disabled: index === 0,
      }, ["↑"]);
      const down = element("button", {
        type: "button",
        "data-rubric": "down",
        "aria-label": "Move " + (item.label || item.key || "item") + " down",
        disabled: index === items.length - 1,
      }, ["↓"]);
      const remove = element("button", {
        type: "button",
        class: "danger",
        "data-rubric": "remove",
        "aria-label": "Remove " + (item.label || item.key || "item"),
      }, ["Remove"]);
      up.addEventListener("click", () => move(index, -1, "up"));
      down.addEventListener("click", () => move(index, 1, "down"));
      remove.addEventListener("click", () => {
        items.splice(index, 1);
        save();
        render();
        say((item.label || item.key || "Item") + " removed.");
        (list.children[Math.min(index, items.length - 1)] || addScale).focus();
      });
      const li = element("li", { class: "rubric-item", tabindex: "-1", "data-kind": item.kind || "scale" }, [
        element("div", { class: "rubric-fields" }, fields),
        element("div", { class: "rubric-moves" }, [up, down, remove]),
      ]);
      li.addEventListener("keydown", (event) => {
        if (!event.altKey || (event.key !== "ArrowUp" && event.key !== "ArrowDown")) return;
        event.preventDefault();
        const focused = document.activeElement && document.activeElement.dataset.rubric;
        move(index, event.key === "ArrowUp" ? -1 : 1, focused || "label");
      });
      return li;
    }

    function render() {
      list.replaceChildren(...items.map(row));
      addScale.disabled = addCheckbox.disabled = items.length >= MAX_ITEMS;
      if (!items.length) list.append(element("li", { class: "muted small" }, ["No rubric: raters only rank."]));
    }

    function add(kind) {
      const base = kind === "scale" ? "scale" : "check";
      let number = items.length + 1;
      while (items.some((item) => item.key === base + "_" + number)) number += 1;
      const item =
        kind === "scale"
          ? { key: base + "_" + number, label: "", kind: "scale", min: 1, max: 7, required: false }
          : { key: base + "_" + number, label: "", kind: "checkbox", required: false };
      keyFollowsName.add(item);
      items.push(item);
      save();
      render();
      list.lastElementChild.querySelector('[data-rubric="label"]').focus();
    }

    addScale.addEventListener("click", () => add("scale"));
    addCheckbox.addEventListener("click", () => add("checkbox"));
    usePreset.addEventListener("click", () => {
      items = preset.map((item) => Object.assign({}, item));
      save();
      render();
      say("The HHH preset is in place; edit it as you like.");
    });
    render();
    save();
  }

  function enhance(root) {
    root.querySelectorAll("[data-rubric-builder-for]").forEach(build);
    root.querySelectorAll("#settings [data-js-only]").forEach((node) => {
      node.hidden = false;
    });
  }

  document.addEventListener("DOMContentLoaded", () => enhance(document));
  document.addEventListener("htmx:load", (event) => enhance(event.target.closest ? event.target : document));
})();

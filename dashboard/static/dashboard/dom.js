/* The operations console's DOM helpers: build elements, set text without needless changes, and
   keep a list of children in step with a list of items by key, updating rows in place (a button
   is never swapped out from under the pointer, and focus stays where it was). Loaded before
   console.js; the files share one object, window.opsConsole, and need no build step. */
"use strict";

(() => {
  const ops = (window.opsConsole ??= {});
  const SVG_NS = "http://www.w3.org/2000/svg";

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "text") node.textContent = value;
      else node.setAttribute(name, value);
    }
    node.append(...children);
    return node;
  }

  function svg(tag, attributes = {}) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    return node;
  }

  function setText(node, text) {
    if (node.textContent !== text) node.textContent = text;
  }

  function setState(node, state, text) {
    const className = `state state-${state}`;
    if (node.className !== className) node.className = className;
    setText(node, text);
  }

  /* Makes container's children match items, in order: a child per item, found by key(item) in
     its data-key, else built; update(child, item) then brings it up to date. */
  function sync(container, items, key, build, update) {
    const existing = new Map();
    for (const child of container.children) existing.set(child.dataset.key, child);
    let previous = null;
    for (const item of items) {
      const k = key(item);
      let child = existing.get(k);
      if (child) existing.delete(k);
      else {
        child = build(item);
        child.dataset.key = k;
      }
      update(child, item);
      const expected = previous ? previous.nextElementSibling : container.firstElementChild;
      if (child !== expected) container.insertBefore(child, expected);
      previous = child;
    }
    for (const child of existing.values()) child.remove();
  }

  /* A table of columns {head, num, cls, draw(td, item)}, its rows kept by key. */
  function table(columns, attributes = {}) {
    const body = el("tbody");
    const cls = (column) => [column.num ? "num" : "", column.cls || ""].join(" ").trim();
    const head = el("tr", {}, ...columns.map((c) => el("th", { scope: "col", class: cls(c), text: c.head })));
    const node = el("table", { class: "ops-table", ...attributes }, el("thead", {}, head), body);
    return {
      node,
      show(items, key) {
        sync(
          body,
          items,
          key,
          () => el("tr", {}, ...columns.map((c) => el("td", { class: cls(c) }))),
          (tr, item) => columns.forEach((column, i) => column.draw(tr.cells[i], item)),
        );
      },
    };
  }

  ops.dom = { el, svg, setText, setState, sync, table };
})();

// Building DOM nodes without innerHTML, so filenames and transcripts are always text.

/**
 * h("a", {href: "#/", class: "x", onclick: fn}, "text", child) -> HTMLAnchorElement
 * Props named on* become listeners; `dataset` and `hidden`/`disabled` are set as properties;
 * everything else is an attribute. Children may be strings, nodes, arrays, null or false.
 */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name in PROPERTIES) node[PROPERTIES[name]] = value;
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  append(node, children);
  return node;
}

const PROPERTIES = { hidden: "hidden", disabled: "disabled", value: "value", checked: "checked" };

function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

/** Replace a node's children. */
export function fill(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

/** Tell screen-reader users about something that happened out of their focus. */
export function announce(text) {
  const region = document.getElementById("announcer");
  region.textContent = "";
  requestAnimationFrame(() => { region.textContent = text; });
}

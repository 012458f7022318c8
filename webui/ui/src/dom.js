// Building DOM nodes without HTML strings.
//
//   h('p', {class: 'hint'}, 'Signed in as ', h('strong', null, user.username))
//
// Text only ever goes into text nodes and attribute values
// (createTextNode, setAttribute), never through innerHTML, so every string
// a page shows — device names, alert messages, server errors — is escaped by
// construction. Keep it that way: no module of the UI uses innerHTML,
// outerHTML, insertAdjacentHTML or document.write.
//
// The Content-Security-Policy forbids inline script and style, so:
//   - event handlers are functions (`onclick: fn`, added with
//     addEventListener); a string handler throws;
//   - there is no `style` attribute: use a class from app.css (a `style`
//     key throws); set el.style.* properties directly where a value must be
//     computed (the CSP allows that).
// URL attributes (href, src, action, formaction) accept only relative URLs
// and http:, https: and mailto: ones; anything else (javascript:, data:)
// throws.

const URL_ATTRIBUTES = new Set(['href', 'src', 'action', 'formaction', 'xlink:href']);
const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

function checkUrl(name, value) {
  const url = new URL(value, document.baseURI);
  if (!SAFE_PROTOCOLS.has(url.protocol)) {
    throw new Error(`h(): refusing ${name}="${value}" (only relative, http(s) and mailto URLs)`);
  }
}

// Appends children to `parent`: Nodes as they are; strings and numbers as
// text; arrays flattened; null, undefined and false skipped (so
// `cond && h(...)` works).
export function append(parent, ...children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return parent;
}

// A new element `tag` with `attrs` (an object, or null) and `children`.
// Attribute values: true sets the attribute empty, false/null/undefined
// leave it out, anything else is set as its string. `on<event>` keys take a
// function. The `value` and `checked` keys also set the live property, so a
// form re-rendered with them shows what they say.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (name.startsWith('on')) {
      if (typeof value !== 'function') throw new Error(`h(): ${name} must be a function`);
      el.addEventListener(name.slice(2).toLowerCase(), value);
      continue;
    }
    if (name === 'style') throw new Error('h(): no inline style (CSP); use a class from app.css');
    if (value === null || value === undefined || value === false) continue;
    const text = value === true ? '' : String(value);
    if (URL_ATTRIBUTES.has(name)) checkUrl(name, text);
    el.setAttribute(name, text);
    if (name === 'value') el.value = text;
    if (name === 'checked') el.checked = true;
  }
  return append(el, ...children);
}

// Replaces everything inside `parent` with `children` (same rules as append).
export function mount(parent, ...children) {
  parent.replaceChildren();
  return append(parent, ...children);
}

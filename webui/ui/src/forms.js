// Shared form and list helpers for the management pages. Everything is built
// with h() (dom.js): no HTML strings.
//
//   const f = form({ onsubmit: save, submit: 'Save' },
//     field('Name', input('rule-name', { name: 'name', required: true })),
//     field('Kind', select('rule-kind', [['threshold', 'Threshold']], 'threshold', { name: 'kind' })));
//   ... catch (err) { showError(f, err); }
//
// A server error {"error": {"field": "x"}} is shown next to the input named
// x, as <p class="field-error" data-error-for="x">; one without a (known)
// field goes into the form's own message box.

import { h, mount } from '/assets/dom.js';
import { ApiError } from '/assets/api.js';

// An <input>; `id` doubles as the label's `for`.
export function input(id, attrs = {}) {
  return h('input', { id, ...attrs });
}

// A <select> from [value, text] pairs (or plain strings).
export function select(id, options, value, attrs = {}) {
  return h('select', { id, ...attrs }, options.map((o) => {
    const [v, t] = Array.isArray(o) ? o : [o, o];
    return h('option', { value: v, selected: String(v) === String(value ?? '') ? true : null }, t);
  }));
}

// A labelled field: <div class="field"><label for>…</label>control<p.field-error></div>.
// `name` (the API's field name) defaults to the control's name attribute.
export function field(label, control, { name, hint } = {}) {
  const key = name ?? control.getAttribute('name') ?? control.id;
  const checkbox = control.getAttribute('type') === 'checkbox';
  return h('div', { class: checkbox ? 'field field-check' : 'field', 'data-field': key },
    checkbox ? null : h('label', { for: control.id }, label),
    control,
    checkbox ? h('label', { for: control.id }, label) : null,
    hint ? h('small', { class: 'muted hint' }, hint) : null,
    h('p', { class: 'field-error', 'data-error-for': key, role: 'alert', hidden: true }));
}

// A <form> with the given fields, a message box and a submit button (plus an
// optional Cancel). `onsubmit(event)` may be async; errors it throws are shown.
export function form({ onsubmit, submit = 'Save', oncancel, className = 'card form' }, ...fields) {
  const message = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const button = h('button', { type: 'submit' }, submit);
  const el = h('form', {
    class: className,
    novalidate: true,
    onsubmit: async (event) => {
      event.preventDefault();
      clearErrors(el);
      button.disabled = true;
      try { await onsubmit(event); } catch (err) { showError(el, err); } finally { button.disabled = false; }
    },
  }, fields, message,
  h('div', { class: 'actions' }, button,
    oncancel ? h('button', { type: 'button', class: 'secondary', onclick: oncancel }, 'Cancel') : null));
  return el;
}

export function clearErrors(formEl) {
  for (const p of formEl.querySelectorAll('.field-error, .form-error')) { p.hidden = true; p.textContent = ''; }
  for (const c of formEl.querySelectorAll('[aria-invalid]')) c.removeAttribute('aria-invalid');
}

// Shows an ApiError (or any error) in the form: next to its field when known.
export function showError(formEl, err) {
  if (!(err instanceof ApiError)) console.error(err);
  const text = err instanceof ApiError ? err.message : 'Something went wrong; the browser console has the details.';
  let slot = null;
  if (err instanceof ApiError && err.field) {
    // "config.url" -> try the full name, then its last part, then its first.
    const names = [err.field, err.field.split('.').pop(), err.field.split('.')[0]];
    for (const n of names) {
      slot = [...formEl.querySelectorAll('.field-error')].find((p) => p.dataset.errorFor === n);
      if (slot) break;
    }
  }
  if (slot) {
    slot.hidden = false;
    slot.textContent = text;
    const control = slot.parentElement.querySelector('input, select, textarea');
    if (control) { control.setAttribute('aria-invalid', 'true'); control.focus(); }
  } else {
    const box = formEl.querySelector('.form-error');
    box.hidden = false;
    box.textContent = err instanceof ApiError && err.field ? `${err.field}: ${text}` : text;
  }
}

// A table: columns [{title, cell(row) -> node|string, className}], rows, and
// rowAttrs(row) -> attributes of the <tr> (data-*-id hooks).
export function table(columns, rows, rowAttrs = () => ({}), empty = 'Nothing here yet.') {
  if (rows.length === 0) return h('p', { class: 'muted empty' }, empty);
  return h('div', { class: 'table-wrap' },
    h('table', { class: 'list' },
      h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col' }, c.title)))),
      h('tbody', null, rows.map((r) => tableRow(columns, r, rowAttrs)))));
}

// One <tr> of table() (rows appended later, e.g. by util.js pagedTable).
export function tableRow(columns, row, rowAttrs = () => ({})) {
  return h('tr', rowAttrs(row),
    columns.map((c) => h('td', { class: c.className ?? null, 'data-label': c.title },
      c.className === 'row-actions' ? h('div', { class: 'cell-actions' }, c.cell(row)) : c.cell(row))));
}

// A page shell: <section data-page=name> with a heading, a toolbar, a status
// line and a body that `refresh` re-fills.
export function pageShell(name, heading, ...toolbar) {
  const status = h('p', { class: 'status', role: 'status', 'aria-live': 'polite' });
  const editor = h('div', { class: 'editor' });
  const body = h('div', { class: 'body' });
  const root = h('section', { 'data-page': name, class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, heading), h('div', { class: 'toolbar' }, toolbar)),
    status, editor, body);
  return {
    root, editor, body,
    say(text, kind = 'info') { status.className = `status status-${kind}`; status.textContent = text ?? ''; },
    fill(...nodes) { mount(body, ...nodes); },
    edit(...nodes) { mount(editor, ...nodes); },
  };
}

// Trimmed string or undefined (so JSON leaves it out).
export function val(el) { const v = el.value.trim(); return v === '' ? undefined : v; }
export function num(el) { const v = el.value.trim(); return v === '' ? undefined : Number(v); }

// {k: v} -> "k=v, k2=v2" (util.js parseLabels reads it back).
export function formatLabels(labels) {
  return Object.entries(labels ?? {}).map(([k, v]) => `${k}=${v}`).join(', ');
}

export function when(ts) { return ts ? new Date(ts).toLocaleString() : '—'; }

export function button(text, onclick, cls = 'secondary') {
  return h('button', { type: 'button', class: cls, onclick }, text);
}

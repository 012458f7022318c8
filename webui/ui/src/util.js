// Small helpers shared by the pages.

import { h, append } from '/assets/dom.js';
import { ApiError } from '/assets/api.js';
import { table, tableRow } from '/assets/forms.js';

export const enc = encodeURIComponent;

// "3 min ago" for an ISO time or epoch ms; "never" for null.
export function ago(t) {
  if (t === null || t === undefined) return 'never';
  const ms = typeof t === 'number' ? t : Date.parse(t);
  if (Number.isNaN(ms)) return String(t);
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

export function fmtTime(t) {
  if (t === null || t === undefined) return '—';
  const d = new Date(typeof t === 'number' ? t : Date.parse(t));
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

export function fmtValue(v) {
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : v.toFixed(Math.abs(v) < 10 ? 2 : 1);
  if (v === null || v === undefined) return '—';
  return String(v);
}

export function labelsText(labels) {
  return Object.entries(labels ?? {}).map(([k, v]) => (v === '' ? k : `${k}=${v}`)).join(', ');
}

// "k=v, k2=v2" -> {k: v}; a part without "=" is a label with an empty value.
export function parseLabels(text) {
  const out = {};
  for (const part of text.split(',')) {
    const p = part.trim();
    if (!p) continue;
    const i = p.indexOf('=');
    if (i < 0) out[p] = '';
    else out[p.slice(0, i).trim()] = p.slice(i + 1).trim();
  }
  return out;
}

// Every page of a list route (follows next_cursor) until `max` items or
// more. `path` may carry filters; without a limit of its own it asks for
// 500 items a request.
export async function listAll(api, path, max = 2000) {
  const q = path.indexOf('?');
  const limit = new URLSearchParams(q < 0 ? '' : path.slice(q + 1)).has('limit') ? '' : 'limit=500';
  const items = [];
  let cursor = null;
  do {
    const params = [limit, cursor ? `cursor=${enc(cursor)}` : ''].filter(Boolean).join('&');
    const page = await api.get(params ? `${path}${q < 0 ? '?' : '&'}${params}` : path);
    items.push(...(page.items ?? []));
    cursor = page.next_cursor;
  } while (cursor && items.length < max);
  return items;
}

// Items per request of the lists shown a page at a time (pagedTable).
export const PAGE_SIZE = 200;

// A list route shown a page at a time, as a table (forms.js table()): the
// first page of `path` now, and a "Load more" button (text: `more`) that
// appends the next page while the route answers a next_cursor. `path` is a
// list route ({"items", "next_cursor"}, taking ?limit= and ?cursor=) with
// any filters in its query, but no limit or cursor. A failed "Load more"
// shows the error under the table and can be retried; the first page's
// error is thrown, like any failed load of a page.
export async function pagedTable(api, path, { columns, rowAttrs, empty, limit = PAGE_SIZE, more: moreText = 'Load more' }) {
  const sep = path.includes('?') ? '&' : '?';
  const get = (cursor) => api.get(`${path}${sep}limit=${limit}${cursor ? `&cursor=${enc(cursor)}` : ''}`);
  const first = await get(null);
  let cursor = first.next_cursor;
  let shown = first.items.length;
  let list = table(columns, first.items, rowAttrs, empty);
  // Where focus goes when the last page hides the button it was on.
  const status = h('p', { class: 'muted pager-status', role: 'status', tabindex: '-1' });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const more = h('button', { type: 'button', class: 'secondary', onclick: loadMore }, moreText);

  function update() {
    more.hidden = !cursor;
    status.textContent = cursor ? `${shown} shown; there are more.` : (shown > 0 ? `All ${shown} shown.` : '');
  }

  // Not `disabled` while loading: that would take the keyboard focus off it.
  let busy = false;
  async function loadMore() {
    if (busy) return;
    busy = true;
    more.setAttribute('aria-busy', 'true');
    error.hidden = true;
    try {
      const page = await get(cursor);
      const tbody = list.querySelector('tbody');
      if (tbody) append(tbody, page.items.map((r) => tableRow(columns, r, rowAttrs)));
      else if (page.items.length > 0) { const t = table(columns, page.items, rowAttrs, empty); list.replaceWith(t); list = t; }
      shown += page.items.length;
      cursor = page.next_cursor;
      const hadFocus = document.activeElement === more;
      update();
      if (hadFocus && more.hidden) status.focus();
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return; // api.js went to the login page
      if (!(err instanceof ApiError)) console.error(err);
      error.hidden = false;
      error.textContent = err instanceof ApiError ? err.message : 'Loading more failed; the browser console has the details.';
    } finally {
      busy = false;
      more.removeAttribute('aria-busy');
    }
  }

  update();
  return h('div', { class: 'paged' }, list, h('div', { class: 'pager' }, more, status), error);
}

// The alerts that are not closed (open + acknowledged), newest first.
export async function activeAlerts(api, extra = '') {
  const [open, ack] = await Promise.all([
    listAll(api, `/api/v1/alerts?status=open${extra}`),
    listAll(api, `/api/v1/alerts?status=acknowledged${extra}`)]);
  return [...open, ...ack].sort((a, b) => b.id - a.id);
}

export function severityBadge(sev) {
  return h('span', { class: `badge sev-${String(sev).replace(/[^a-z]/g, '')}` }, sev);
}

export function statusBadge(status) {
  return h('span', { class: `badge st-${String(status).replace(/[^a-z]/g, '')}`, 'data-status': '' }, status);
}

// A 404 from the API as the page's content.
export function notFound(title, message) {
  return h('section', { class: 'card' }, h('h1', null, title), h('p', { 'data-not-found': '', role: 'alert' }, message));
}

export function liveStatus(liveObj, onLeave) {
  const el = h('span', { id: 'live-status', class: `live-status ${liveObj.state}`, role: 'status', 'aria-live': 'polite' }, liveObj.state);
  const off = liveObj.onState((s) => { el.textContent = s; el.className = `live-status ${s}`; });
  onLeave(off);
  return el;
}

// A list item for an alert (dashboard, device page).
export function alertItem(a) {
  return h('li', { class: `alert-item sev-${String(a.severity).replace(/[^a-z]/g, '')}`, 'data-alert-id': a.id },
    h('a', { href: `#/alerts/${a.id}` }, `#${a.id}`), ' ',
    severityBadge(a.severity), ' ', statusBadge(a.status), ' ',
    h('a', { href: `#/devices/${enc(a.device)}` }, a.device), ' ',
    h('span', { class: 'msg' }, a.message), ' ',
    h('span', { class: 'muted' }, ago(a.opened_at)));
}

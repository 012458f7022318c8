// #/alerts: the tenant's alerts with filters (status, severity, device,
// kind), Acknowledge and Close, kept current by the live feed.

import { h, mount } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { live } from '/assets/live.js';
import { enc, ago, listAll, severityBadge, statusBadge, liveStatus } from '/assets/util.js';

export const path = '/alerts';
export const title = 'Alerts';
export const nav = 'Alerts';
export const roles = ['tenant_admin', 'tenant_viewer'];

export const KINDS = ['THRESHOLD', 'NO_HEARTBEAT'];

export function alertActions(a, canWrite, onDone, errBox) {
  if (!canWrite || a.status === 'closed') return null;
  const act = (what) => async (e) => {
    e.currentTarget.disabled = true;
    try {
      const updated = await api.post(`/api/v1/alerts/${a.id}/${what}`);
      onDone(updated);
    } catch (err) {
      if (errBox) mount(errBox, err.message);
      onDone(null);
    }
  };
  return h('span', { class: 'actions' },
    a.status === 'open' && h('button', { type: 'button', class: 'secondary', onclick: act('ack') }, 'Acknowledge'),
    h('button', { type: 'button', class: 'secondary', onclick: act('close') }, 'Close'));
}

function select(id, label, options, value) {
  return [h('label', { for: id }, label),
    h('select', { id, name: id }, options.map(([v, t]) => h('option', { value: v, selected: v === value }, t)))];
}

export async function render(ctx) {
  const canWrite = ctx.user.role === 'tenant_admin';
  const q = ctx.query;
  const filters = {
    status: q.get('status') ?? 'active',
    severity: q.get('severity') ?? '',
    device: q.get('device') ?? '',
    kind: q.get('kind') ?? '',
  };
  const errBox = h('p', { class: 'form-error', role: 'alert' });
  const body = h('tbody');
  const rows = new Map();

  function matches(a) {
    if (filters.status === 'active' && a.status === 'closed') return false;
    if (filters.status !== 'active' && filters.status !== '' && a.status !== filters.status) return false;
    if (filters.severity && a.severity !== filters.severity) return false;
    if (filters.device && a.device !== filters.device) return false;
    if (filters.kind && a.kind !== filters.kind) return false;
    return true;
  }

  function draw() {
    const list = [...rows.values()].filter(matches).sort((a, b) => b.id - a.id);
    mount(body, list.length === 0 ? h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No alerts match.')) : list.map((a) =>
      h('tr', { 'data-alert-id': a.id },
        h('td', null, h('a', { href: `#/alerts/${a.id}` }, `#${a.id}`)),
        h('td', null, severityBadge(a.severity)),
        h('td', null, statusBadge(a.status)),
        h('td', null, h('a', { href: `#/devices/${enc(a.device)}` }, a.device)),
        h('td', { class: 'msg' }, a.message, a.silenced ? h('span', { class: 'muted' }, ' (silenced)') : null),
        h('td', { class: 'muted' }, ago(a.opened_at)),
        h('td', null, alertActions(a, canWrite, (u) => { if (u) { rows.set(u.id, u); } draw(); }, errBox)))));
  }

  async function load() {
    const p = new URLSearchParams();
    if (filters.status && filters.status !== 'active') p.set('status', filters.status);
    if (filters.severity) p.set('severity', filters.severity);
    if (filters.device) p.set('device', filters.device);
    if (filters.kind) p.set('kind', filters.kind);
    let items;
    if (filters.status === 'active') {
      const [o, k] = await Promise.all(['open', 'acknowledged'].map((s) => {
        const pp = new URLSearchParams(p); pp.set('status', s);
        return listAll(api, `/api/v1/alerts?${pp}`, 500);
      }));
      items = [...o, ...k];
    } else {
      items = await listAll(api, `/api/v1/alerts?${p}`, 500);
    }
    rows.clear();
    for (const a of items) rows.set(a.id, a);
  }

  await load();
  if (!ctx.isCurrent()) return h('section');
  draw();

  ctx.onLeave(live.subscribe({
    alerts: true,
    onAlert(ev) { if (ev.alert) { rows.set(ev.alert.id, ev.alert); draw(); } },
    async onResync() { try { await load(); if (ctx.isCurrent()) draw(); } catch (err) { console.error(err); } },
  }));

  const form = h('form', { class: 'filters', onsubmit: (e) => e.preventDefault(), onchange: () => {
    const p = new URLSearchParams();
    for (const k of Object.keys(filters)) {
      const v = form.elements[`f-${k}`].value.trim();
      if (v !== '' && !(k === 'status' && v === 'active')) p.set(k, v);
    }
    if (form.elements['f-status'].value === '') p.set('status', '');
    location.hash = `#/alerts${[...p].length ? `?${p}` : ''}`;
  } },
  h('div', null, select('f-status', 'Status', [['active', 'open + acknowledged'], ['open', 'open'], ['acknowledged', 'acknowledged'], ['closed', 'closed'], ['', 'any']], filters.status)),
  h('div', null, select('f-severity', 'Severity', [['', 'any'], ['critical', 'critical'], ['major', 'major'], ['minor', 'minor'], ['warning', 'warning'], ['info', 'info']], filters.severity)),
  h('div', null, h('label', { for: 'f-device' }, 'Device'), h('input', { id: 'f-device', name: 'f-device', value: filters.device, placeholder: 'device id' })),
  h('div', null, select('f-kind', 'Kind', [['', 'any'], ...KINDS.map((k) => [k, k])], filters.kind)));

  return h('section', { 'data-page': 'alerts', class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Alerts'), liveStatus(live, ctx.onLeave)),
    form, errBox,
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', null, h('tr', null, ['ID', 'Severity', 'Status', 'Device', 'Message', 'Opened', ''].map((t) => h('th', { scope: 'col' }, t)))),
      body)));
}

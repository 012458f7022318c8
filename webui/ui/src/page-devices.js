// #/devices: the tenant's devices: search and label filter, status, last
// seen, metric count; create (the MQTT secret shown once, with a
// mosquitto_pub example), edit name and labels, delete, rotate the secret.

import { h, mount } from '/assets/dom.js';
import { api, ApiError } from '/assets/api.js';
import { enc, ago, labelsText, parseLabels, listAll } from '/assets/util.js';

export const path = '/devices';
export const title = 'Devices';
export const nav = 'Devices';
export const roles = ['tenant_admin', 'tenant_viewer'];

function field(id, label, attrs = {}) {
  return h('div', { class: 'field' },
    h('label', { for: id }, label),
    h('input', { id, name: id, ...attrs }),
    h('span', { class: 'field-error', 'data-error-for': id.replace(/^(dev|edit)-/, ''), role: 'alert' }));
}

function showError(form, err) {
  for (const el of form.querySelectorAll('.field-error')) el.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  const general = form.querySelector('.form-error');
  if (err instanceof ApiError && err.field) {
    const slot = form.querySelector(`[data-error-for="${CSS.escape(err.field)}"]`);
    if (slot) {
      slot.textContent = err.message;
      const input = slot.previousElementSibling;
      if (input) { input.setAttribute('aria-invalid', 'true'); input.focus(); }
      return;
    }
  }
  if (general) general.textContent = err.message;
}

// The port of the first "address:port" in `listeners`, or null.
function portOf(listeners) {
  const first = listeners?.[0];
  return first ? first.slice(first.lastIndexOf(':') + 1) : null;
}

// The secret, shown once, and a command that publishes with it to this
// server's MQTT listener (GET /api/v1/info): TCP, else TLS.
function secretBox(tenant, device, secret, info) {
  const host = location.hostname || 'localhost';
  const tcp = portOf(info?.mqtt?.tcp);
  const tls = portOf(info?.mqtt?.tls);
  const where = tcp ? `-p ${tcp}` : tls ? `-p ${tls} --cafile ca.pem` : '-p 1883';
  const cmd = `mosquitto_pub -h ${host} ${where} -u '${tenant}/${device}' -P '${secret}' -i '${device}' -t 'd/${device}/telemetry' -m '{"temp":21.5}' -q 1`;
  const copy = (text) => async (e) => {
    const b = e.currentTarget;
    try { await navigator.clipboard.writeText(text); b.textContent = 'Copied'; } catch { b.textContent = 'Select and copy'; }
  };
  return h('div', { class: 'card secret', role: 'status' },
    h('p', null, h('strong', null, `MQTT secret of ${device}`), ' — shown only now; store it.'),
    h('p', { class: 'copyable' }, h('code', { 'data-secret': '' }, secret), ' ', h('button', { type: 'button', class: 'secondary', onclick: copy(secret) }, 'Copy secret')),
    h('p', null, 'Publish a reading:'),
    h('pre', { class: 'copyable' }, h('code', { 'data-example': '' }, cmd)),
    h('button', { type: 'button', class: 'secondary', onclick: copy(cmd) }, 'Copy command'));
}

// GET /api/v1/info, once per page load; null if it cannot be read (the
// example then shows the default port).
let info;
async function serverInfo() {
  if (info === undefined) info = await api.get('/api/v1/info').catch(() => null);
  return info;
}

export async function render(ctx) {
  const canWrite = ctx.user.role === 'tenant_admin';
  const tenant = ctx.user.tenant ?? '';
  const search = ctx.query.get('q') ?? '';
  const label = ctx.query.get('label') ?? '';
  let devices = [];
  const metricCounts = new Map();
  const body = h('tbody');
  const notice = h('div', { 'aria-live': 'polite' });
  const errBox = h('p', { class: 'form-error', role: 'alert' });
  let editing = null;

  async function load() {
    devices = await listAll(api, `/api/v1/devices${label ? `?label=${enc(label)}` : ''}`);
    await Promise.all(devices.slice(0, 300).map(async (d) => {
      try { metricCounts.set(d.id, (await api.get(`/api/v1/devices/${enc(d.id)}/metrics`)).metrics.length); } catch { /* unknown */ }
    }));
  }

  function visible() {
    const s = search.toLowerCase();
    return devices.filter((d) => !s || d.id.toLowerCase().includes(s) || (d.name ?? '').toLowerCase().includes(s)
      || labelsText(d.labels).toLowerCase().includes(s));
  }

  function editRow(d) {
    const form = h('form', { class: 'inline-form', onsubmit: async (e) => {
      e.preventDefault();
      try {
        await api.patch(`/api/v1/devices/${enc(d.id)}`, { name: form.elements['edit-name'].value, labels: parseLabels(form.elements['edit-labels'].value) });
        editing = null;
        await load();
        draw();
      } catch (err) { showError(form, err); }
    } },
    field('edit-name', 'Name', { value: d.name ?? '' }),
    field('edit-labels', 'Labels', { value: labelsText(d.labels), placeholder: 'site=north, floor=2' }),
    h('p', { class: 'form-error', role: 'alert' }),
    h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Save'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { editing = null; draw(); } }, 'Cancel')));
    return h('tr', { 'data-device': d.id, class: 'editing' }, h('td', { colspan: 7 }, h('strong', null, d.id), form));
  }

  function row(d) {
    if (editing === d.id) return editRow(d);
    return h('tr', { 'data-device': d.id },
      h('td', null, h('a', { href: `#/devices/${enc(d.id)}` }, d.id)),
      h('td', null, d.name ?? ''),
      h('td', null, labelsText(d.labels)),
      h('td', null, h('span', { class: `badge st-${d.status === 'enabled' ? 'ok' : 'off'}` }, d.status)),
      h('td', { class: 'muted' }, ago(d.last_seen)),
      h('td', null, metricCounts.has(d.id) ? String(metricCounts.get(d.id)) : '—'),
      h('td', null, canWrite && h('div', { class: 'actions' }, [
        h('button', { type: 'button', class: 'secondary', onclick: () => { editing = d.id; draw(); } }, 'Edit'),
        h('button', { type: 'button', class: 'secondary', onclick: async () => {
          if (!window.confirm(`Rotate the MQTT secret of ${d.id}? The old one stops working.`)) return;
          try {
            const r = await api.post(`/api/v1/devices/${enc(d.id)}/secret`);
            mount(notice, secretBox(tenant, d.id, r.secret, await serverInfo()));
          } catch (err) { errBox.textContent = err.message; }
        } }, 'Rotate secret'),
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          if (!window.confirm(`Delete device ${d.id}? Its telemetry and alerts go with it.`)) return;
          try { await api.del(`/api/v1/devices/${enc(d.id)}`); await load(); draw(); } catch (err) { errBox.textContent = err.message; }
        } }, 'Delete')])));
  }

  function draw() {
    const list = visible();
    mount(body, list.length === 0 ? h('tr', null, h('td', { colspan: 7, class: 'muted' }, devices.length ? 'No device matches.' : 'No devices yet.')) : list.map(row));
  }

  await load();
  if (!ctx.isCurrent()) return h('section');
  draw();

  const createForm = h('form', { class: 'card create-form', hidden: true, onsubmit: async (e) => {
    e.preventDefault();
    const f = createForm.elements;
    try {
      const d = await api.post('/api/v1/devices', { id: f['dev-id'].value.trim(), name: f['dev-name'].value, labels: parseLabels(f['dev-labels'].value) });
      createForm.reset();
      createForm.hidden = true;
      mount(notice, secretBox(tenant, d.id, d.secret, await serverInfo()));
      await load();
      draw();
    } catch (err) { showError(createForm, err); }
  } },
  h('h2', null, 'New device'),
  field('dev-id', 'ID', { required: true, pattern: '[a-z0-9][a-z0-9_\\-]{0,62}', autocomplete: 'off', placeholder: 'boiler-1' }),
  field('dev-name', 'Name', { autocomplete: 'off' }),
  field('dev-labels', 'Labels', { placeholder: 'site=north, floor=2', autocomplete: 'off' }),
  h('p', { class: 'form-error', role: 'alert' }),
  h('div', { class: 'buttons' }, h('button', { type: 'submit' }, 'Create'),
    h('button', { type: 'button', class: 'secondary', onclick: () => { createForm.hidden = true; } }, 'Cancel')));

  const searchInput = h('input', { id: 'dev-search', type: 'search', value: search, placeholder: 'id, name or label', oninput: () => {
    const s = searchInput.value.toLowerCase();
    const list = devices.filter((d) => !s || d.id.toLowerCase().includes(s) || (d.name ?? '').toLowerCase().includes(s) || labelsText(d.labels).toLowerCase().includes(s));
    mount(body, list.length === 0 ? h('tr', null, h('td', { colspan: 7, class: 'muted' }, 'No device matches.')) : list.map(row));
  } });
  const labelInput = h('input', { id: 'dev-label', value: label, placeholder: 'k=v' });

  return h('section', { 'data-page': 'devices', class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Devices'),
      canWrite && h('button', { type: 'button', onclick: () => { createForm.hidden = false; createForm.elements['dev-id'].focus(); } }, 'New device')),
    createForm, notice, errBox,
    h('form', { class: 'filters', onsubmit: (e) => {
      e.preventDefault();
      const p = new URLSearchParams();
      if (searchInput.value) p.set('q', searchInput.value);
      if (labelInput.value.trim()) p.set('label', labelInput.value.trim());
      location.hash = `#/devices${[...p].length ? `?${p}` : ''}`;
    } },
    h('div', null, h('label', { for: 'dev-search' }, 'Search'), searchInput),
    h('div', null, h('label', { for: 'dev-label' }, 'Label filter'), labelInput),
    h('div', null, h('button', { type: 'submit', class: 'secondary' }, 'Filter'))),
    h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
      h('thead', null, h('tr', null, ['ID', 'Name', 'Labels', 'Status', 'Last seen', 'Metrics', ''].map((t) => h('th', { scope: 'col' }, t)))),
      body)));
}

// #/routes: which alert events go to which integrations. GET|POST
// /api/v1/routes, PUT|DELETE /api/v1/routes/{id}. Routes are tried in id
// order; continue=false stops at the first match.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, form, input, select, table, pageShell, num, formatLabels, button } from '/assets/forms.js';
import { listAll, parseLabels } from '/assets/util.js';

export const path = '/routes';
export const title = 'Routes';
export const nav = 'Routes';
export const roles = ['tenant_admin', 'tenant_viewer'];

const EVENTS = ['alert.opened', 'alert.acknowledged', 'alert.escalated', 'alert.closed'];
const SEVERITIES = ['', 'critical', 'major', 'minor', 'warning', 'info'];
const KINDS = ['THRESHOLD', 'NO_HEARTBEAT'];
const csv = (text) => text.split(',').map((s) => s.trim()).filter(Boolean);

function matchText(m) {
  const parts = [];
  if (m?.events?.length) parts.push(`events ${m.events.join(', ')}`);
  if (m?.min_severity) parts.push(`severity ≥ ${m.min_severity}`);
  if (m?.kinds?.length) parts.push(`kinds ${m.kinds.join(', ')}`);
  if (m?.devices?.length) parts.push(`devices ${m.devices.join(', ')}`);
  if (m?.labels && Object.keys(m.labels).length) parts.push(`labels ${formatLabels(m.labels)}`);
  if (m?.rules?.length) parts.push(`rules ${m.rules.join(', ')}`);
  return parts.join('; ') || 'every alert event';
}

function checks(prefix, values, chosen) {
  return h('div', { class: 'checks-row' }, values.map((v) => {
    const id = `${prefix}-${v.replace(/[^a-zA-Z0-9]/g, '-')}`;
    return h('span', { class: 'field-check' },
      h('input', { id, type: 'checkbox', value: v, checked: chosen?.includes(v) ? true : null }),
      h('label', { for: id }, v));
  }));
}
const checked = (box) => [...box.querySelectorAll('input:checked')].map((i) => i.value);

export async function render(ctx) {
  const canWrite = ctx.user.role === 'tenant_admin';
  const shell = pageShell('routes', 'Routes',
    canWrite ? h('button', { type: 'button', onclick: () => openEditor(null) }, 'New route') : null);
  let integrations = [];

  async function refresh() {
    const [routes, ints] = await Promise.all([listAll(api, '/api/v1/routes?limit=200'), listAll(api, '/api/v1/integrations?limit=200')]);
    integrations = ints;
    if (!ctx.isCurrent()) return;
    const intName = (id) => ints.find((i) => i.id === id)?.name ?? `#${id}`;
    shell.fill(table([
      { title: 'Name', cell: (r) => h('strong', null, r.name) },
      { title: 'Match', cell: (r) => matchText(r.match) },
      { title: 'Integrations', cell: (r) => r.integrations.map(intName).join(', ') },
      { title: 'Repeat', cell: (r) => (r.repeat_s ? `every ${r.repeat_s}s` : 'no') },
      { title: 'Continue', cell: (r) => (r.continue ? 'yes' : 'stop') },
      { title: 'State', cell: (r) => (r.enabled ? 'enabled' : 'disabled') },
      { title: 'Actions', className: 'row-actions', cell: (r) => canWrite ? [
        button('Edit', () => openEditor(r)),
        button('Delete', async () => {
          if (!window.confirm(`Delete route “${r.name}”?`)) return;
          try { await api.del(`/api/v1/routes/${r.id}`); shell.say(`Route “${r.name}” deleted.`); await refresh(); }
          catch (err) { shell.say(err.message, 'error'); }
        }, 'danger'),
      ] : null },
    ], routes, (r) => ({ 'data-route-id': r.id }), 'No routes yet: alerts are not delivered anywhere.'));
  }

  function openEditor(route) {
    const r = route ?? { match: {}, integrations: [], repeat_s: 0, continue: true, enabled: true };
    const m = r.match ?? {};
    const name = input('route-name', { name: 'name', value: r.name, required: true });
    const ints = h('div', { class: 'checks-row', id: 'route-integrations' }, integrations.length ? integrations.map((i) => {
      const id = `route-int-${i.id}`;
      return h('span', { class: 'field-check' },
        h('input', { id, type: 'checkbox', value: i.id, checked: r.integrations.includes(i.id) ? true : null }),
        h('label', { for: id }, `${i.name} (${i.type})`));
    }) : h('span', { class: 'muted' }, 'No integrations yet: add one on the Integrations page.'));
    const events = checks('route-ev', EVENTS, m.events);
    const kinds = checks('route-kind', KINDS, m.kinds);
    const minSev = select('route-severity', SEVERITIES.map((s) => [s, s || 'any']), m.min_severity ?? '', { name: 'min_severity' });
    const devices = input('route-devices', { name: 'devices', value: (m.devices ?? []).join(', ') });
    const labels = input('route-labels', { name: 'labels', value: formatLabels(m.labels) });
    const rules = input('route-rules', { name: 'rules', value: (m.rules ?? []).join(', '), placeholder: 'rule ids' });
    const repeat = input('route-repeat', { name: 'repeat_s', type: 'number', min: 0, value: r.repeat_s });
    const cont = input('route-continue', { name: 'continue', type: 'checkbox', checked: r.continue });
    const enabled = input('route-enabled', { name: 'enabled', type: 'checkbox', checked: r.enabled });
    const f = form({
      submit: 'Save', oncancel: () => shell.edit(),
      onsubmit: async () => {
        const match = {};
        if (checked(events).length) match.events = checked(events);
        if (checked(kinds).length) match.kinds = checked(kinds);
        if (minSev.value) match.min_severity = minSev.value;
        if (csv(devices.value).length) match.devices = csv(devices.value);
        if (labels.value.trim()) match.labels = parseLabels(labels.value);
        if (csv(rules.value).length) match.rules = csv(rules.value).map(Number);
        const body = { name: name.value.trim(), integrations: checked(ints).map(Number), match,
          repeat_s: num(repeat) ?? 0, continue: cont.checked, enabled: enabled.checked };
        if (route) await api.put(`/api/v1/routes/${route.id}`, body); else await api.post('/api/v1/routes', body);
        shell.edit(); shell.say(`Route “${body.name}” saved.`); await refresh();
      },
    }, h('h2', null, route ? `Edit route “${route.name}”` : 'New route'),
    field('Name', name),
    h('fieldset', { class: 'group' }, h('legend', null, 'Integrations'), ints,
      h('p', { class: 'field-error', 'data-error-for': 'integrations', role: 'alert', hidden: true })),
    h('fieldset', { class: 'group' }, h('legend', null, 'Match (every criterion given must hold)'),
      h('p', { class: 'muted hint' }, 'Events (none: all)'), events,
      h('p', { class: 'muted hint' }, 'Kinds (none: all)'), kinds,
      field('Minimum severity', minSev, { name: 'match.min_severity' }),
      field('Devices', devices, { name: 'match.devices', hint: 'device ids, comma separated' }),
      field('Labels', labels, { name: 'match.labels', hint: 'k=v, comma separated' }),
      field('Rules', rules, { name: 'match.rules', hint: 'rule ids, comma separated' }),
      h('p', { class: 'field-error', 'data-error-for': 'match', role: 'alert', hidden: true })),
    field('Repeat every (seconds)', repeat, { hint: '0: no reminders while the alert is open' }),
    field('Continue to later routes', cont), field('Enabled', enabled));
    shell.edit(f);
    name.focus();
  }

  await refresh();
  return shell.root;
}

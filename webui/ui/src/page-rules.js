// #/rules: the tenant's alert rules. List, create/edit (threshold or
// heartbeat), enable/disable and delete. GET|POST /api/v1/rules,
// PUT|DELETE /api/v1/rules/{id}; PUT takes the whole definition.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, form, input, select, table, pageShell, val, num, formatLabels, button } from '/assets/forms.js';
import { listAll, parseLabels } from '/assets/util.js';

export const path = '/rules';
export const title = 'Rules';
export const nav = 'Rules';
export const roles = ['tenant_admin', 'tenant_viewer'];

const SEVERITIES = ['critical', 'major', 'minor', 'warning', 'info'];
const OPS = ['>', '<', '>=', '<=', '==', '!='];

// The writable definition of a stored rule (for PUT).
function definition(rule) {
  const d = { name: rule.name, description: rule.description ?? '', kind: rule.kind, severity: rule.severity,
    scope: rule.scope ?? {}, enabled: rule.enabled };
  if (rule.escalate_after_s != null) d.escalate_after_s = rule.escalate_after_s;
  if (rule.kind === 'threshold') {
    Object.assign(d, { metric: rule.metric, op: rule.op, value: rule.value, for_s: rule.for_s ?? 0 });
    if (rule.clear_value != null) d.clear_value = rule.clear_value;
  } else {
    Object.assign(d, { interval_s: rule.interval_s, missed: rule.missed ?? 1 });
  }
  return d;
}

function describe(r) {
  if (r.kind === 'threshold') {
    return `${r.metric} ${r.op} ${r.value}` + (r.for_s ? ` for ${r.for_s}s` : '') + (r.clear_value != null ? `, clears at ${r.clear_value}` : '');
  }
  return `heartbeat every ${r.interval_s}s, ${r.missed ?? 1} missed`;
}

function scopeText(s) {
  if (s?.device) return `device ${s.device}`;
  if (s?.labels && Object.keys(s.labels).length) return `labels ${formatLabels(s.labels)}`;
  return 'all devices';
}

export async function render(ctx) {
  const canWrite = ctx.user.role === 'tenant_admin';
  const shell = pageShell('rules', 'Rules',
    canWrite ? h('button', { type: 'button', onclick: () => openEditor(null) }, 'New rule') : null);

  async function refresh() {
    const rules = await listAll(api, '/api/v1/rules?limit=200');
    if (!ctx.isCurrent()) return;
    shell.fill(table([
      { title: 'Name', cell: (r) => h('strong', null, r.name) },
      { title: 'Condition', cell: (r) => describe(r) },
      { title: 'Severity', cell: (r) => h('span', { class: `sev sev-${r.severity}` }, r.severity) },
      { title: 'Scope', cell: (r) => scopeText(r.scope) },
      { title: 'State', cell: (r) => h('span', { 'data-enabled': String(r.enabled) }, r.enabled ? 'enabled' : 'disabled') },
      { title: 'Actions', className: 'row-actions', cell: (r) => canWrite ? [
        button('Edit', () => openEditor(r)),
        button(r.enabled ? 'Disable' : 'Enable', () => act(async () => {
          await api.put(`/api/v1/rules/${r.id}`, { ...definition(r), enabled: !r.enabled });
          shell.say(`Rule “${r.name}” ${r.enabled ? 'disabled' : 'enabled'}.`);
        })),
        button('Delete', () => act(async () => {
          if (!window.confirm(`Delete rule “${r.name}”? Its open alerts are closed.`)) return;
          await api.del(`/api/v1/rules/${r.id}`);
          shell.say(`Rule “${r.name}” deleted.`);
        }), 'danger'),
      ] : null },
    ], rules, (r) => ({ 'data-rule-id': r.id }), 'No rules yet.'));
  }

  async function act(fn) {
    try { await fn(); await refresh(); } catch (err) { shell.say(err.message, 'error'); }
  }

  function openEditor(rule) {
    const r = rule ?? { kind: 'threshold', op: '>', severity: 'warning', for_s: 0, missed: 1, enabled: true, scope: {} };
    const name = input('rule-name', { name: 'name', value: r.name, required: true, maxlength: 128 });
    const description = input('rule-description', { name: 'description', value: r.description });
    const kind = select('rule-kind', [['threshold', 'Threshold'], ['heartbeat', 'Heartbeat']], r.kind, { name: 'kind' });
    const metric = input('rule-metric', { name: 'metric', value: r.metric, placeholder: 'temperature' });
    const op = select('rule-op', OPS, r.op, { name: 'op' });
    const value = input('rule-value', { name: 'value', type: 'number', step: 'any', value: r.value });
    const forS = input('rule-for', { name: 'for_s', type: 'number', min: 0, value: r.for_s });
    const clearValue = input('rule-clear', { name: 'clear_value', type: 'number', step: 'any', value: r.clear_value });
    const interval = input('rule-interval', { name: 'interval_s', type: 'number', min: 1, value: r.interval_s });
    const missed = input('rule-missed', { name: 'missed', type: 'number', min: 1, value: r.missed });
    const severity = select('rule-severity', SEVERITIES, r.severity, { name: 'severity' });
    const scopeKind = select('rule-scope-kind', [['all', 'All devices'], ['device', 'One device'], ['labels', 'Devices with labels']],
      r.scope?.device ? 'device' : (r.scope?.labels ? 'labels' : 'all'), { name: 'scope_kind' });
    const scopeDevice = input('rule-scope-device', { name: 'device', value: r.scope?.device });
    const scopeLabels = input('rule-scope-labels', { name: 'labels', value: formatLabels(r.scope?.labels), placeholder: 'site=plant-7' });
    const escalate = input('rule-escalate', { name: 'escalate_after_s', type: 'number', min: 1, value: r.escalate_after_s });
    const enabled = input('rule-enabled', { name: 'enabled', type: 'checkbox', checked: r.enabled !== false });

    const thresholdBox = h('fieldset', { class: 'group' }, h('legend', null, 'Threshold'),
      field('Metric', metric), field('Operator', op), field('Value', value),
      field('For (seconds)', forS, { hint: 'The condition must hold this long.' }),
      field('Clear at', clearValue, { hint: 'Optional hysteresis: the alert clears when the metric is back at this.' }));
    const heartbeatBox = h('fieldset', { class: 'group' }, h('legend', null, 'Heartbeat'),
      field('Interval (seconds)', interval), field('Missed', missed, { hint: 'Silence of interval × missed opens NO_HEARTBEAT.' }));
    const deviceField = field('Device', scopeDevice, { name: 'scope.device' });
    const labelsField = field('Labels', scopeLabels, { name: 'scope.labels', hint: 'k=v, comma separated' });
    const sync = () => {
      thresholdBox.hidden = kind.value !== 'threshold';
      heartbeatBox.hidden = kind.value !== 'heartbeat';
      deviceField.hidden = scopeKind.value !== 'device';
      labelsField.hidden = scopeKind.value !== 'labels';
    };
    kind.addEventListener('change', sync);
    scopeKind.addEventListener('change', sync);

    const f = form({
      submit: 'Save',
      oncancel: () => shell.edit(),
      onsubmit: async () => {
        const body = { name: name.value.trim(), description: description.value.trim(), kind: kind.value, severity: severity.value, enabled: enabled.checked };
        if (kind.value === 'threshold') Object.assign(body, { metric: val(metric), op: op.value, value: num(value), for_s: num(forS) ?? 0, clear_value: num(clearValue) });
        else Object.assign(body, { interval_s: num(interval), missed: num(missed) ?? 1 });
        body.scope = scopeKind.value === 'device' ? { device: val(scopeDevice) ?? '' }
          : scopeKind.value === 'labels' ? { labels: parseLabels(scopeLabels.value) } : {};
        if (num(escalate) !== undefined) body.escalate_after_s = num(escalate);
        if (rule) await api.put(`/api/v1/rules/${rule.id}`, body);
        else await api.post('/api/v1/rules', body);
        shell.edit();
        shell.say(`Rule “${body.name}” saved.`);
        await refresh();
      },
    },
    h('h2', null, rule ? `Edit rule “${rule.name}”` : 'New rule'),
    field('Name', name), field('Description', description), field('Kind', kind),
    thresholdBox, heartbeatBox,
    field('Severity', severity),
    field('Scope', scopeKind, { name: 'scope' }), deviceField, labelsField,
    field('Escalate after (seconds)', escalate, { hint: 'Optional: unacknowledged alerts escalate.' }),
    field('Enabled', enabled));
    sync();
    shell.edit(f);
    name.focus();
  }

  await refresh();
  return shell.root;
}

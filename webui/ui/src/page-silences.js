// #/silences: mute matching alerts for a window. GET|POST /api/v1/silences,
// DELETE /api/v1/silences/{id} (ends it).

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, form, input, select, table, pageShell, val, num, formatLabels, when, button } from '/assets/forms.js';
import { listAll, parseLabels } from '/assets/util.js';

export const path = '/silences';
export const title = 'Silences';
export const nav = 'Silences';
export const roles = ['tenant_admin', 'tenant_viewer'];

function matcherText(m) {
  const parts = [];
  if (m?.device) parts.push(`device ${m.device}`);
  if (m?.labels && Object.keys(m.labels).length) parts.push(`labels ${formatLabels(m.labels)}`);
  if (m?.rule) parts.push(`rule ${m.rule}`);
  if (m?.kind) parts.push(m.kind);
  if (m?.severity) parts.push(m.severity);
  return parts.join('; ') || 'every alert';
}

export async function render(ctx) {
  const canWrite = ctx.user.role === 'tenant_admin';
  const shell = pageShell('silences', 'Silences',
    canWrite ? h('button', { type: 'button', onclick: openEditor }, 'New silence') : null);

  async function refresh() {
    const items = await listAll(api, '/api/v1/silences?limit=200');
    if (!ctx.isCurrent()) return;
    shell.fill(table([
      { title: 'Matchers', cell: (s) => matcherText(s.matchers) },
      { title: 'From', cell: (s) => when(s.starts_at) },
      { title: 'Until', cell: (s) => when(s.ends_at) },
      { title: 'State', cell: (s) => (s.active ? 'active' : 'inactive') },
      { title: 'Comment', cell: (s) => s.comment },
      { title: 'By', cell: (s) => s.created_by },
      { title: 'Actions', className: 'row-actions', cell: (s) => canWrite ? button('Delete', async () => {
        if (!window.confirm('Delete this silence?')) return;
        try { await api.del(`/api/v1/silences/${s.id}`); shell.say('Silence deleted.'); await refresh(); }
        catch (err) { shell.say(err.message, 'error'); }
      }, 'danger') : null },
    ], items, (s) => ({ 'data-silence-id': s.id }), 'No silences.'));
  }

  function openEditor() {
    const device = input('silence-device', { name: 'device' });
    const labels = input('silence-labels', { name: 'labels', placeholder: 'site=plant-7' });
    const rule = input('silence-rule', { name: 'rule', type: 'number', min: 1 });
    const kind = select('silence-kind', [['', 'any'], 'THRESHOLD', 'NO_HEARTBEAT'], '', { name: 'kind' });
    const severity = select('silence-severity', [['', 'any'], 'critical', 'major', 'minor', 'warning', 'info'], '', { name: 'severity' });
    const duration = input('silence-duration', { name: 'duration_s', type: 'number', min: 1, value: 3600 });
    const comment = input('silence-comment', { name: 'comment' });
    shell.edit(form({
      submit: 'Save', oncancel: () => shell.edit(),
      onsubmit: async () => {
        const matchers = {};
        if (val(device)) matchers.device = val(device);
        if (labels.value.trim()) matchers.labels = parseLabels(labels.value);
        if (num(rule) !== undefined) matchers.rule = num(rule);
        if (kind.value) matchers.kind = kind.value;
        if (severity.value) matchers.severity = severity.value;
        await api.post('/api/v1/silences', { matchers, duration_s: num(duration), comment: comment.value.trim() });
        shell.edit(); shell.say('Silence created.'); await refresh();
      },
    }, h('h2', null, 'New silence'),
    h('p', { class: 'muted' }, 'Every matcher given must match; none matches every alert.'),
    field('Device', device, { name: 'matchers.device' }), field('Labels', labels, { name: 'matchers.labels', hint: 'k=v, comma separated' }),
    field('Rule ID', rule, { name: 'matchers.rule' }), field('Kind', kind, { name: 'matchers.kind' }),
    field('Severity', severity, { name: 'matchers.severity' }),
    field('Duration (seconds)', duration, { name: 'duration_s', hint: 'from now' }), field('Comment', comment)));
    device.focus();
  }

  await refresh();
  return shell.root;
}

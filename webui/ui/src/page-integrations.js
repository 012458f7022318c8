// #/integrations: where alerts are delivered (webhook, email, SNMP, MQTT).
// GET|POST /api/v1/integrations, PUT|DELETE /api/v1/integrations/{id},
// POST /api/v1/integrations/{id}/test ("Send test"). Secrets come back as
// "********"; a secret field left at that mask (or empty on edit) is not sent,
// so the stored one is kept.

import { h, mount } from '/assets/dom.js';
import { api, ApiError } from '/assets/api.js';
import { field, form, input, select, table, pageShell, val, num, button } from '/assets/forms.js';
import { listAll } from '/assets/util.js';

export const path = '/integrations';
export const title = 'Integrations';
export const nav = 'Integrations';
export const roles = ['tenant_admin', 'tenant_viewer'];

const MASK = '********';

// Per type: config fields [key, label, kind, options] and secret fields [key, label].
const TYPES = {
  webhook: {
    config: [['url', 'URL', 'text'], ['format', 'Format', 'select', ['pulsegate', 'alertmanager']]],
    secrets: [['secret', 'Secret']],
  },
  email: {
    config: [['host', 'Host', 'text'], ['port', 'Port', 'number'], ['security', 'Security', 'select', ['starttls', 'tls', 'none']],
      ['username', 'Login', 'text'], ['from', 'From', 'text'], ['to', 'To', 'list']],
    secrets: [['password', 'Password']],
  },
  snmp: {
    config: [['host', 'Host', 'text'], ['port', 'Port', 'number'], ['version', 'Version', 'select', ['v2c', 'v3']],
      ['user', 'v3 user', 'text'], ['auth_protocol', 'Auth protocol', 'select', ['', 'SHA', 'SHA-256']],
      ['priv_protocol', 'Privacy protocol', 'select', ['', 'AES']]],
    secrets: [['community', 'Community'], ['auth_password', 'Auth password'], ['priv_password', 'Privacy password']],
  },
  mqtt: {
    config: [['url', 'URL', 'text'], ['username', 'Login', 'text'], ['topic_template', 'Topic template', 'text'],
      ['qos', 'QoS', 'select', ['0', '1']]],
    secrets: [['password', 'Password']],
  },
};

function target(i) {
  const c = i.config ?? {};
  if (i.type === 'webhook' || i.type === 'mqtt') return c.url ?? '';
  if (i.type === 'email') return `${c.host ?? ''}:${c.port ?? ''} → ${(c.to ?? []).join(', ')}`;
  return `${c.host ?? ''}:${c.port ?? ''} (${c.version ?? ''})`;
}

function testResult(slot, res) {
  slot.className = `test-result outcome-${res.outcome}`;
  mount(slot,
    h('strong', null, res.outcome), ' · status ', h('code', null, String(res.status ?? '—')),
    ' · ', `${res.latency_ms ?? '?'} ms`,
    res.error ? [' · ', h('span', { class: 'test-error' }, res.error)] : null);
}

export async function render(ctx) {
  const canWrite = ctx.user.role === 'tenant_admin';
  const shell = pageShell('integrations', 'Integrations',
    canWrite ? h('button', { type: 'button', onclick: () => openEditor(null) }, 'New integration') : null);

  async function refresh() {
    const items = await listAll(api, '/api/v1/integrations?limit=200');
    if (!ctx.isCurrent()) return;
    shell.fill(table([
      { title: 'Name', cell: (i) => h('strong', null, i.name) },
      { title: 'Type', cell: (i) => i.type },
      { title: 'Target', cell: (i) => h('span', { class: 'wrap' }, target(i)) },
      { title: 'Secrets', cell: (i) => Object.keys(i.secrets ?? {}).map((k) => `${k}: ${MASK}`).join(', ') || '—' },
      { title: 'State', cell: (i) => (i.enabled ? 'enabled' : 'disabled') },
      { title: 'Actions', className: 'row-actions', cell: (i) => {
        const slot = h('div', { class: 'test-result', 'data-test-result': true, 'aria-live': 'polite' });
        const testBtn = button('Send test', async () => {
          testBtn.disabled = true;
          slot.className = 'test-result';
          mount(slot, 'sending…');
          try {
            testResult(slot, await api.post(`/api/v1/integrations/${i.id}/test`));
          } catch (err) {
            slot.className = 'test-result outcome-failed';
            mount(slot, h('strong', null, 'failed'), ' · ', err instanceof ApiError ? err.message : String(err));
          } finally { testBtn.disabled = false; }
        });
        return [
          canWrite ? testBtn : null,
          canWrite ? button('Edit', () => openEditor(i)) : null,
          canWrite ? button('Delete', async () => {
            if (!window.confirm(`Delete integration “${i.name}”?`)) return;
            try { await api.del(`/api/v1/integrations/${i.id}`); shell.say(`Integration “${i.name}” deleted.`); await refresh(); }
            catch (err) { shell.say(err.message, 'error'); }
          }, 'danger') : null,
          slot,
        ];
      } },
    ], items, (i) => ({ 'data-integration-id': i.id }), 'No integrations yet.'));
  }

  function openEditor(item) {
    const it = item ?? { type: 'webhook', config: { format: 'pulsegate' }, secrets: {}, enabled: true };
    const name = input('int-name', { name: 'name', value: it.name, required: true });
    const type = select('int-type', [['webhook', 'Webhook'], ['email', 'Email'], ['snmp', 'SNMP trap'], ['mqtt', 'MQTT']], it.type,
      { name: 'type', disabled: item ? true : null });
    const enabled = input('int-enabled', { name: 'enabled', type: 'checkbox', checked: it.enabled !== false });
    const typeBox = h('div', { class: 'type-fields' });
    let controls = {};

    function buildTypeFields() {
      const t = TYPES[type.value];
      const cfg = type.value === it.type ? it.config ?? {} : {};
      const sec = type.value === it.type ? it.secrets ?? {} : {};
      controls = { config: {}, secrets: {} };
      const nodes = [];
      for (const [key, label, kind, options] of t.config) {
        const id = `int-${key}`;
        let c;
        if (kind === 'select') c = select(id, options.map((o) => [o, o || '—']), cfg[key] ?? options[0], { name: key });
        else if (kind === 'list') c = input(id, { name: key, value: (cfg[key] ?? []).join(', '), placeholder: 'a@example.com, b@example.com' });
        else c = input(id, { name: key, type: kind === 'number' ? 'number' : 'text', value: cfg[key] });
        controls.config[key] = [c, kind];
        nodes.push(field(label, c, { name: key, hint: kind === 'list' ? 'comma separated' : null }));
      }
      for (const [key, label] of t.secrets) {
        const c = input(`int-${key}`, { name: key, type: 'password', autocomplete: 'new-password',
          value: sec[key] ? MASK : '', placeholder: sec[key] ? 'unchanged' : '' });
        controls.secrets[key] = c;
        nodes.push(field(label, c, { name: key, hint: sec[key] ? 'Set; leave as is to keep it, clear it to remove it.' : null }));
      }
      mount(typeBox, nodes);
    }
    type.addEventListener('change', buildTypeFields);
    buildTypeFields();

    const f = form({
      submit: 'Save',
      oncancel: () => shell.edit(),
      onsubmit: async () => {
        const config = { ...(item?.config ?? {}) };
        for (const [key, [c, kind]] of Object.entries(controls.config)) {
          if (kind === 'number') config[key] = num(c);
          else if (kind === 'list') config[key] = c.value.split(',').map((s) => s.trim()).filter(Boolean);
          else if (key === 'qos') config[key] = Number(c.value);
          else config[key] = val(c);
          if (config[key] === undefined) delete config[key];
        }
        const secrets = {};
        for (const [key, c] of Object.entries(controls.secrets)) {
          if (c.value === MASK) continue;                       // keep the stored one
          if (c.value === '') { if (item?.secrets?.[key]) secrets[key] = null; continue; } // remove
          secrets[key] = c.value;
        }
        const body = { name: name.value.trim(), type: type.value, config, secrets, enabled: enabled.checked };
        if (item) await api.put(`/api/v1/integrations/${item.id}`, body);
        else await api.post('/api/v1/integrations', body);
        shell.edit();
        shell.say(`Integration “${body.name}” saved.`);
        await refresh();
      },
    },
    h('h2', null, item ? `Edit integration “${item.name}”` : 'New integration'),
    field('Name', name), field('Type', type), typeBox, field('Enabled', enabled));
    shell.edit(f);
    name.focus();
  }

  await refresh();
  return shell.root;
}

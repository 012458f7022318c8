// #/digest: the tenant's daily digest settings (GET|PUT /api/v1/digest),
// a preview of the summary (GET /api/v1/digest/preview) and "Send now"
// (POST /api/v1/digest/send, queued to the delivery log).

import { h, mount } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, form, input, select, pageShell, num, when, button } from '/assets/forms.js';
import { listAll } from '/assets/util.js';

export const path = '/digest';
export const title = 'Daily digest';
export const nav = 'Digest';
export const roles = ['tenant_admin', 'tenant_viewer'];

function previewNode(d) {
  return h('div', { class: 'card', 'data-digest-preview': true },
    h('h2', null, `Preview: ${d.day} (${d.time_zone})`),
    h('p', { class: 'muted' }, `${when(d.from)} – ${when(d.to)}`),
    h('dl', { class: 'facts' },
      h('dt', null, 'Opened'), h('dd', null, String(d.opened)),
      h('dt', null, 'Closed'), h('dd', null, String(d.closed)),
      h('dt', null, 'Still open'), h('dd', null, String(d.still_open)),
      h('dt', null, 'Open by severity'), h('dd', null, Object.entries(d.open_by_severity ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')),
      h('dt', null, 'Noisiest devices'), h('dd', null, (d.noisiest_devices ?? []).map((x) => `${x.device} (${x.alerts})`).join(', ') || '—'),
      h('dt', null, 'Noisiest rules'), h('dd', null, (d.noisiest_rules ?? []).map((x) => `${x.name} (${x.alerts})`).join(', ') || '—')));
}

export async function render(ctx) {
  const canWrite = ctx.user.role === 'tenant_admin';
  const shell = pageShell('digest', 'Daily digest');
  const [settings, integrations] = await Promise.all([api.get('/api/v1/digest'), listAll(api, '/api/v1/integrations?limit=200')]);
  const emails = integrations.filter((i) => i.type === 'email');
  const enabled = input('digest-enabled', { name: 'enabled', type: 'checkbox', checked: settings.enabled });
  const hour = select('digest-hour', Array.from({ length: 24 }, (_, i) => [i, `${String(i).padStart(2, '0')}:00`]), settings.hour, { name: 'hour' });
  const tz = input('digest-tz', { name: 'time_zone', value: settings.time_zone, placeholder: 'Europe/Berlin' });
  const ints = h('div', { class: 'checks-row' }, emails.length ? emails.map((i) => h('span', { class: 'field-check' },
    h('input', { id: `digest-int-${i.id}`, type: 'checkbox', value: i.id, checked: settings.integrations.includes(i.id) ? true : null }),
    h('label', { for: `digest-int-${i.id}` }, i.name))) : h('span', { class: 'muted' }, 'No email integrations yet.'));
  const previewBox = h('div', { class: 'preview-box' });
  const chosen = () => [...ints.querySelectorAll('input:checked')].map((i) => Number(i.value));

  const f = form({
    submit: 'Save',
    onsubmit: async () => {
      const saved = await api.put('/api/v1/digest', { enabled: enabled.checked, hour: num(hour), time_zone: tz.value.trim(), integrations: chosen() });
      shell.say(`Digest settings saved${saved?.last_sent ? ` (last sent ${saved.last_sent})` : ''}.`);
    },
  }, field('Enabled', enabled), field('Hour', hour), field('Time zone', tz, { hint: 'IANA name' }),
  h('fieldset', { class: 'group' }, h('legend', null, 'Email integrations'), ints,
    h('p', { class: 'field-error', 'data-error-for': 'integrations', role: 'alert', hidden: true })),
  h('p', { class: 'muted' }, `Last scheduled digest: ${settings.last_sent ?? 'never'}`));
  if (!canWrite) for (const c of f.querySelectorAll('input, select, button')) c.disabled = true;

  shell.fill(f,
    h('div', { class: 'actions' },
      button('Preview', async () => {
        try { mount(previewBox, previewNode(await api.get('/api/v1/digest/preview'))); } catch (err) { shell.say(err.message, 'error'); }
      }),
      canWrite ? button('Send now', async () => {
        try {
          const r = await api.post('/api/v1/digest/send', {});
          shell.say(`Digest queued (${r?.jobs ?? 0} job(s)); see Deliveries.`);
        } catch (err) { shell.say(err.message, 'error'); }
      }) : null),
    previewBox);
  return shell.root;
}

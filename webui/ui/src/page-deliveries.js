// #/deliveries: the delivery log (outbox jobs), filterable by status and
// integration, a page at a time ("Load more"). GET /api/v1/deliveries.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, select, pageShell, when } from '/assets/forms.js';
import { pagedTable, listAll } from '/assets/util.js';

export const path = '/deliveries';
export const title = 'Deliveries';
export const nav = 'Deliveries';
export const roles = ['tenant_admin', 'tenant_viewer'];

export async function render(ctx) {
  const integrations = await listAll(api, '/api/v1/integrations?limit=200');
  const status = select('deliveries-status', [['', 'any'], 'pending', 'in_flight', 'delivered', 'dead'], ctx.query.get('status') ?? '', { name: 'status' });
  const integration = select('deliveries-integration', [['', 'any'], ...integrations.map((i) => [i.id, i.name])], ctx.query.get('integration') ?? '', { name: 'integration' });
  const shell = pageShell('deliveries', 'Deliveries',
    h('form', { class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      if (status.value) q.set('status', status.value);
      if (integration.value) q.set('integration', integration.value);
      location.hash = `#/deliveries${q.size ? `?${q}` : ''}`;
    } }, field('Status', status), field('Integration', integration), h('button', { type: 'submit', class: 'secondary' }, 'Filter')));
  const q = new URLSearchParams();
  for (const k of ['status', 'integration', 'alert']) if (ctx.query.get(k)) q.set(k, ctx.query.get(k));
  const intName = (id) => integrations.find((i) => i.id === id)?.name ?? `#${id}`;
  shell.fill(await pagedTable(api, `/api/v1/deliveries${q.size ? `?${q}` : ''}`, { columns: [
    { title: 'ID', cell: (d) => String(d.id) },
    { title: 'Event', cell: (d) => d.event },
    { title: 'Alert', cell: (d) => (d.alert ? h('a', { href: `#/alerts/${d.alert}` }, `#${d.alert}`) : '—') },
    { title: 'Integration', cell: (d) => intName(d.integration) },
    { title: 'Status', cell: (d) => h('span', { class: `delivery-${d.status}` }, d.status) },
    { title: 'Attempts', cell: (d) => `${d.attempts}${d.max_attempts ? ` / ${d.max_attempts}` : ''}` },
    { title: 'Last error', cell: (d) => h('span', { class: 'wrap' }, d.last_error ?? '') },
    { title: 'Updated', cell: (d) => when(d.updated_at) },
  ], rowAttrs: (d) => ({ 'data-delivery-id': d.id }), empty: 'No deliveries.' }));
  return shell.root;
}

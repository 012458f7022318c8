// #/operator/rejected: MQTT events the broker refused (bad credentials,
// denied topics, …), newest first. GET /api/v1/operator/rejected.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, input, table, pageShell, when } from '/assets/forms.js';

export const path = '/operator/rejected';
export const title = 'Rejected events';
export const nav = 'Rejected';
export const roles = ['operator_admin', 'operator'];

export async function render(ctx) {
  const tenantFilter = ctx.query.get('tenant') ?? '';
  const tenant = input('rejected-tenant', { name: 'tenant', value: tenantFilter, placeholder: 'any' });
  const shell = pageShell('operator-rejected', 'Rejected events',
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = tenant.value.trim() ? `#/operator/rejected?tenant=${encodeURIComponent(tenant.value.trim())}` : '#/operator/rejected'; } },
      field('Tenant', tenant), h('button', { type: 'submit', class: 'secondary' }, 'Filter')));
  const q = new URLSearchParams({ limit: '200' });
  if (tenantFilter) q.set('tenant', tenantFilter);
  const page = await api.get(`/api/v1/operator/rejected?${q}`);
  shell.fill(table([
    { title: 'When', cell: (r) => when(r.at) },
    { title: 'Tenant', cell: (r) => r.tenant ?? '—' },
    { title: 'Principal', cell: (r) => r.principal },
    { title: 'Kind', cell: (r) => r.kind },
    { title: 'Topic', cell: (r) => h('code', { class: 'wrap' }, r.topic) },
    { title: 'Reason', cell: (r) => r.reason },
  ], page.items, (r) => ({ 'data-rejected-id': r.id }), 'No rejected events.'));
  return shell.root;
}

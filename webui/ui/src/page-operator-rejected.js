// #/operator/rejected: MQTT events the broker refused (bad credentials,
// denied topics, …), newest first, a page at a time ("Load more").
// GET /api/v1/operator/rejected.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, input, pageShell, when } from '/assets/forms.js';
import { pagedTable } from '/assets/util.js';

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
  const q = tenantFilter ? `?tenant=${encodeURIComponent(tenantFilter)}` : '';
  shell.fill(await pagedTable(api, `/api/v1/operator/rejected${q}`, { columns: [
    { title: 'When', cell: (r) => when(r.at) },
    { title: 'Tenant', cell: (r) => r.tenant ?? '—' },
    { title: 'Principal', cell: (r) => r.principal },
    { title: 'Kind', cell: (r) => r.kind },
    { title: 'Topic', cell: (r) => h('code', { class: 'wrap' }, r.topic) },
    { title: 'Reason', cell: (r) => r.reason },
  ], rowAttrs: (r) => ({ 'data-rejected-id': r.id }), empty: 'No rejected events.' }));
  return shell.root;
}

// #/operator/devices: every tenant's devices (operators), with a tenant
// filter, a page at a time ("Load more"). GET /api/v1/operator/devices?tenant=.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, input, pageShell, when, formatLabels } from '/assets/forms.js';
import { pagedTable } from '/assets/util.js';

export const path = '/operator/devices';
export const title = 'All devices';
export const nav = 'All devices';
export const roles = ['operator_admin', 'operator'];

export async function render(ctx) {
  const tenantFilter = ctx.query.get('tenant') ?? '';
  const filter = input('opdev-tenant', { name: 'tenant', value: tenantFilter, placeholder: 'all tenants' });
  const shell = pageShell('operator-devices', 'All devices',
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = filter.value.trim() ? `#/operator/devices?tenant=${encodeURIComponent(filter.value.trim())}` : '#/operator/devices'; } },
      field('Tenant filter', filter), h('button', { type: 'submit', class: 'secondary' }, 'Filter')));
  const q = tenantFilter ? `?tenant=${encodeURIComponent(tenantFilter)}` : '';
  shell.fill(await pagedTable(api, `/api/v1/operator/devices${q}`, { columns: [
    { title: 'Tenant', cell: (d) => d.tenant ?? '—' },
    { title: 'ID', cell: (d) => h('code', null, d.id) },
    { title: 'Name', cell: (d) => d.name ?? '' },
    { title: 'Labels', cell: (d) => formatLabels(d.labels) },
    { title: 'Last seen', cell: (d) => when(d.last_seen_at ?? d.last_seen) },
    { title: 'State', cell: (d) => (d.disabled ? 'disabled' : (d.online === false ? 'offline' : (d.online ? 'online' : ''))) },
  ], rowAttrs: (d) => ({ 'data-device': d.id, 'data-tenant': d.tenant }), empty: 'No devices.' }));
  return shell.root;
}

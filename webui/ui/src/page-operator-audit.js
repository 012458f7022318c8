// #/operator/audit: the audit log, newest first (operators), filter by
// tenant and actor, "Older" pages on with next_cursor. GET /api/v1/operator/audit.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, input, pageShell, when } from '/assets/forms.js';
import { pagedTable } from '/assets/util.js';

export const path = '/operator/audit';
export const title = 'Audit log';
export const nav = 'Audit';
export const roles = ['operator_admin', 'operator'];

export async function render(ctx) {
  const tenant = input('audit-tenant', { name: 'tenant', value: ctx.query.get('tenant') ?? '', placeholder: 'any' });
  const actor = input('audit-actor', { name: 'actor', value: ctx.query.get('actor') ?? '', placeholder: 'user:admin' });
  const shell = pageShell('operator-audit', 'Audit log',
    h('form', { class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      const q = new URLSearchParams();
      if (tenant.value.trim()) q.set('tenant', tenant.value.trim());
      if (actor.value.trim()) q.set('actor', actor.value.trim());
      location.hash = `#/operator/audit${q.size ? `?${q}` : ''}`;
    } }, field('Tenant', tenant), field('Actor', actor), h('button', { type: 'submit', class: 'secondary' }, 'Filter')));
  const q = new URLSearchParams();
  for (const k of ['tenant', 'actor']) if (ctx.query.get(k)) q.set(k, ctx.query.get(k));
  shell.fill(await pagedTable(api, `/api/v1/operator/audit${q.size ? `?${q}` : ''}`, { columns: [
    { title: 'When', cell: (a) => when(a.at) },
    { title: 'Actor', cell: (a) => a.actor },
    { title: 'Tenant', cell: (a) => a.tenant ?? '—' },
    { title: 'Action', cell: (a) => h('code', null, a.action) },
    { title: 'Target', cell: (a) => a.target },
    { title: 'Details', cell: (a) => h('code', { class: 'wrap' }, JSON.stringify(a.details ?? {})) },
  ], rowAttrs: (a) => ({ 'data-audit-id': a.id }), empty: 'No audit entries.', limit: 100, more: 'Older' }));
  return shell.root;
}

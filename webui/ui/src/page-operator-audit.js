// #/operator/audit: the audit log, newest first (operators), filter by
// tenant and actor, "Older" pages on with next_cursor. GET /api/v1/operator/audit.

import { h, append } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, input, table, pageShell, when } from '/assets/forms.js';

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
  const base = new URLSearchParams({ limit: '100' });
  for (const k of ['tenant', 'actor']) if (ctx.query.get(k)) base.set(k, ctx.query.get(k));
  const cols = [
    { title: 'When', cell: (a) => when(a.at) },
    { title: 'Actor', cell: (a) => a.actor },
    { title: 'Tenant', cell: (a) => a.tenant ?? '—' },
    { title: 'Action', cell: (a) => h('code', null, a.action) },
    { title: 'Target', cell: (a) => a.target },
    { title: 'Details', cell: (a) => h('code', { class: 'wrap' }, JSON.stringify(a.details ?? {})) },
  ];
  const more = h('div', { class: 'actions' });
  async function load(cursor) {
    const q = new URLSearchParams(base);
    if (cursor) q.set('cursor', cursor);
    const page = await api.get(`/api/v1/operator/audit?${q}`);
    return page;
  }
  const first = await load(null);
  const list = table(cols, first.items, (a) => ({ 'data-audit-id': a.id }), 'No audit entries.');
  shell.fill(list, more);
  let cursor = first.next_cursor;
  const olderBtn = h('button', { type: 'button', class: 'secondary', onclick: async () => {
    try {
      const page = await load(cursor);
      const tbody = list.querySelector('tbody');
      const extra = table(cols, page.items, (a) => ({ 'data-audit-id': a.id }));
      if (tbody && extra.querySelector('tbody')) append(tbody, [...extra.querySelector('tbody').children]);
      cursor = page.next_cursor;
      olderBtn.hidden = !cursor;
    } catch (err) { shell.say(err.message, 'error'); }
  } }, 'Older');
  olderBtn.hidden = !cursor;
  append(more, olderBtn);
  return shell.root;
}

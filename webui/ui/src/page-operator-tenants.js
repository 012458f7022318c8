// #/operator/tenants: every tenant (operators). Create and disable/enable
// are for operator_admin. GET|POST /api/v1/operator/tenants, PATCH …/{id}.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, form, input, table, pageShell, val, when, button } from '/assets/forms.js';
import { listAll } from '/assets/util.js';

export const path = '/operator/tenants';
export const title = 'Tenants';
export const nav = 'Tenants';
export const roles = ['operator_admin', 'operator'];

export async function render(ctx) {
  const admin = ctx.user.role === 'operator_admin';
  const shell = pageShell('operator-tenants', 'Tenants',
    admin ? h('button', { type: 'button', onclick: openEditor }, 'New tenant') : null);

  async function refresh() {
    const items = await listAll(api, '/api/v1/operator/tenants?limit=200');
    if (!ctx.isCurrent()) return;
    shell.fill(table([
      { title: 'ID', cell: (t) => h('code', null, t.id) },
      { title: 'Name', cell: (t) => t.name },
      { title: 'State', cell: (t) => (t.disabled ? 'disabled' : 'active') },
      { title: 'Created', cell: (t) => when(t.created_at) },
      { title: 'Actions', className: 'row-actions', cell: (t) => admin ? button(t.disabled ? 'Enable' : 'Disable', async () => {
        if (!t.disabled && !window.confirm(`Disable tenant “${t.id}”? Its users, devices and tokens are refused.`)) return;
        try { await api.patch(`/api/v1/operator/tenants/${encodeURIComponent(t.id)}`, { disabled: !t.disabled }); await refresh(); }
        catch (err) { shell.say(err.message, 'error'); }
      }, t.disabled ? 'secondary' : 'danger') : null },
    ], items, (t) => ({ 'data-tenant-id': t.id }), 'No tenants yet.'));
  }

  function openEditor() {
    const id = input('tenant-id', { name: 'id', required: true, placeholder: 'acme', autocapitalize: 'off' });
    const name = input('tenant-name', { name: 'name' });
    shell.edit(form({
      submit: 'Create', oncancel: () => shell.edit(),
      onsubmit: async () => {
        const t = await api.post('/api/v1/operator/tenants', { id: id.value.trim(), name: val(name) });
        shell.edit(); shell.say(`Tenant “${t.id}” created.`); await refresh();
      },
    }, h('h2', null, 'New tenant'), field('ID', id, { hint: 'lower case letters, digits, _ and -' }), field('Name', name)));
    id.focus();
  }

  await refresh();
  return shell.root;
}

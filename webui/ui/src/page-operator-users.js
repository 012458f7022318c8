// #/operator/users: every user (operators); operator_admin creates users
// and disables/enables them. GET|POST /api/v1/operator/users, PATCH …/{username}.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, form, input, select, table, pageShell, when, button } from '/assets/forms.js';
import { listAll } from '/assets/util.js';

export const path = '/operator/users';
export const title = 'Users';
export const nav = 'Users';
export const roles = ['operator_admin', 'operator'];

const ROLES = ['tenant_admin', 'tenant_viewer', 'operator', 'operator_admin'];

export async function render(ctx) {
  const admin = ctx.user.role === 'operator_admin';
  const tenantFilter = ctx.query.get('tenant') ?? '';
  const filter = input('users-tenant', { name: 'tenant', value: tenantFilter, placeholder: 'all tenants' });
  const shell = pageShell('operator-users', 'Users',
    h('form', { class: 'inline', onsubmit: (e) => { e.preventDefault(); location.hash = filter.value.trim() ? `#/operator/users?tenant=${encodeURIComponent(filter.value.trim())}` : '#/operator/users'; } },
      field('Tenant filter', filter), h('button', { type: 'submit', class: 'secondary' }, 'Filter')),
    admin ? h('button', { type: 'button', onclick: openEditor }, 'New user') : null);

  async function refresh() {
    const q = tenantFilter ? `&tenant=${encodeURIComponent(tenantFilter)}` : '';
    const items = await listAll(api, `/api/v1/operator/users?limit=200${q}`);
    if (!ctx.isCurrent()) return;
    shell.fill(table([
      { title: 'User name', cell: (u) => h('strong', null, u.username) },
      { title: 'Role', cell: (u) => u.role },
      { title: 'Tenant', cell: (u) => u.tenant ?? '—' },
      { title: 'State', cell: (u) => (u.disabled ? 'disabled' : 'active') },
      { title: 'Last login', cell: (u) => when(u.last_login_at) },
      { title: 'Actions', className: 'row-actions', cell: (u) => admin && u.username !== ctx.user.username ? button(u.disabled ? 'Enable' : 'Disable', async () => {
        try { await api.patch(`/api/v1/operator/users/${encodeURIComponent(u.username)}`, { disabled: !u.disabled }); await refresh(); }
        catch (err) { shell.say(err.message, 'error'); }
      }, u.disabled ? 'secondary' : 'danger') : null },
    ], items, (u) => ({ 'data-username': u.username }), 'No users.'));
  }

  async function openEditor() {
    const tenants = await listAll(api, '/api/v1/operator/tenants?limit=200');
    const username = input('user-username', { name: 'username', required: true, autocomplete: 'off', autocapitalize: 'off' });
    const password = input('user-password', { name: 'password', type: 'password', required: true, autocomplete: 'new-password', minlength: 8 });
    const role = select('user-role', ROLES, 'tenant_admin', { name: 'role' });
    const tenant = select('user-tenant', tenants.map((t) => [t.id, `${t.id} — ${t.name}`]), tenantFilter || tenants[0]?.id, { name: 'tenant' });
    const tenantField = field('Tenant', tenant);
    const sync = () => { tenantField.hidden = role.value.startsWith('operator'); };
    role.addEventListener('change', sync);
    sync();
    shell.edit(form({
      submit: 'Create', oncancel: () => shell.edit(),
      onsubmit: async () => {
        const body = { username: username.value.trim(), password: password.value, role: role.value };
        if (!role.value.startsWith('operator')) body.tenant = tenant.value;
        const u = await api.post('/api/v1/operator/users', body);
        shell.edit(); shell.say(`User “${u.username}” created.`); await refresh();
      },
    }, h('h2', null, 'New user'), field('User name', username), field('Password', password, { hint: 'at least 8 characters' }),
    field('Role', role), tenantField));
    username.focus();
  }

  await refresh();
  return shell.root;
}

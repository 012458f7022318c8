// #/tokens: API tokens. Creating one shows the token once; revoke deletes
// it. GET|POST /api/v1/tokens, DELETE /api/v1/tokens/{id}.

import { h } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { field, form, input, table, pageShell, when, button } from '/assets/forms.js';
import { listAll } from '/assets/util.js';

export const path = '/tokens';
export const title = 'API tokens';
export const nav = 'Tokens';
export const roles = ['tenant_admin'];

export async function render(ctx) {
  const shell = pageShell('tokens', 'API tokens', h('button', { type: 'button', onclick: openEditor }, 'New token'));

  async function refresh() {
    const items = await listAll(api, '/api/v1/tokens?limit=200');
    if (!ctx.isCurrent()) return;
    shell.fill(table([
      { title: 'Name', cell: (t) => h('strong', null, t.name) },
      { title: 'ID', cell: (t) => h('code', null, t.id) },
      { title: 'Created', cell: (t) => when(t.created_at) },
      { title: 'Expires', cell: (t) => (t.expires_at ? when(t.expires_at) : 'never') + (t.expired ? ' (expired)' : '') },
      { title: 'Last used', cell: (t) => when(t.last_used_at) },
      { title: 'Actions', className: 'row-actions', cell: (t) => button('Revoke', async () => {
        if (!window.confirm(`Revoke token “${t.name}”? Clients using it stop working.`)) return;
        try { await api.del(`/api/v1/tokens/${encodeURIComponent(t.id)}`); shell.say(`Token “${t.name}” revoked.`); await refresh(); }
        catch (err) { shell.say(err.message, 'error'); }
      }, 'danger') },
    ], items, (t) => ({ 'data-token-id': t.id }), 'No API tokens.'));
  }

  function openEditor() {
    const name = input('token-name', { name: 'name', required: true });
    const expires = input('token-expires', { name: 'expires_at', type: 'datetime-local' });
    shell.edit(form({
      submit: 'Create', oncancel: () => shell.edit(),
      onsubmit: async () => {
        const body = { name: name.value.trim() };
        if (expires.value) body.expires_at = new Date(expires.value).toISOString();
        const t = await api.post('/api/v1/tokens', body);
        shell.edit(h('div', { class: 'card secret-once', role: 'status' },
          h('p', null, h('strong', null, `Token “${t.name}” created.`), ' Copy it now: it is not shown again.'),
          h('p', null, h('code', { 'data-token-secret': true, 'data-secret': true }, t.token)),
          button('Done', () => shell.edit())));
        await refresh();
      },
    }, h('h2', null, 'New API token'), field('Name', name), field('Expires', expires, { hint: 'optional; empty: never' })));
    name.focus();
  }

  await refresh();
  return shell.root;
}

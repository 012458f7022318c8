// #/: the tenant dashboard. A placeholder for now: who is logged in. The
// device health grid, the live alerts feed and the counts come here
// (DESIGN.md, Web UI and REST API: Pages).

import { h } from '/assets/dom.js';

export const path = '/';
export const title = 'Dashboard';
export const nav = 'Dashboard';

export function render(ctx) {
  const { username, role, tenant } = ctx.user;
  return h('section', { class: 'card' },
    h('h1', null, 'Dashboard'),
    h('p', null, 'Signed in as ', h('strong', { id: 'dashboard-user' }, username), '.'),
    h('dl', { class: 'facts' },
      h('dt', null, 'Role'), h('dd', null, role),
      h('dt', null, 'Tenant'), h('dd', null, tenant ?? 'none (operator)')),
    h('p', { class: 'muted' }, 'Devices, charts and alerts will appear here.'));
}

// The shell of the web UI: hash routing, the top bar, login state.
//
// Every page is a module /assets/page-<name>.js (assets are flat: the
// server serves /assets/<file name>; list a new file in webui/meson.build,
// ui_assets) that exports:
//
//   export const path = '/devices/:id';   // the route after '#'; ':x' = one segment
//   export const title = 'Device';        // the document title
//   export const nav = 'Devices';         // optional: a link in the top bar
//   export const roles = ['tenant_admin', 'tenant_viewer']; // optional: who sees it
//   export const requiresLogin = false;   // optional: no login needed (the login page)
//   export async function render(ctx) { return h('section', ...); }
//
// and is added to PAGES below. To move to another page, set location.hash. render() gets
//   ctx.params   the ':x' segments, decoded ({id: 'd1'})
//   ctx.query    URLSearchParams of the part after '?' ('#/alerts?status=open')
//   ctx.user     the logged-in user ({username, role, tenant}), null on public pages
//   ctx.onLeave(fn)  fn runs when the page is left (close a WebSocket, stop timers)
//   ctx.isCurrent()  false once the user has moved on (check after an await)
// and returns a Node (or a Promise of one) that replaces <main>'s content.
// An ApiError it throws is shown in place of the page; a 401 has already
// sent the browser to the login page (api.js).

import { h, mount } from '/assets/dom.js';
import { api, ApiError, session, setSession, clearSession, setFlash, takeFlash, setReturnTo } from '/assets/api.js';
import * as loginPage from '/assets/page-login.js';
import * as dashboardPage from '/assets/page-dashboard.js';
import * as devicesPage from '/assets/page-devices.js';
import * as devicePage from '/assets/page-device.js';
import * as alertsPage from '/assets/page-alerts.js';
import * as alertPage from '/assets/page-alert.js';
import { live } from '/assets/live.js';
import * as rulesPage from '/assets/page-rules.js';
import * as integrationsPage from '/assets/page-integrations.js';
import * as routesPage from '/assets/page-routes.js';
import * as silencesPage from '/assets/page-silences.js';
import * as tokensPage from '/assets/page-tokens.js';
import * as digestPage from '/assets/page-digest.js';
import * as deliveriesPage from '/assets/page-deliveries.js';
import * as opTenantsPage from '/assets/page-operator-tenants.js';
import * as opUsersPage from '/assets/page-operator-users.js';
import * as opDevicesPage from '/assets/page-operator-devices.js';
import * as opAuditPage from '/assets/page-operator-audit.js';
import * as opRejectedPage from '/assets/page-operator-rejected.js';
import * as opHealthPage from '/assets/page-operator-health.js';

const PAGES = [loginPage, dashboardPage, devicesPage, devicePage, alertsPage, alertPage, rulesPage, integrationsPage, routesPage, silencesPage, tokensPage, digestPage, deliveriesPage, opTenantsPage, opUsersPage, opDevicesPage, opAuditPage, opRejectedPage, opHealthPage];

const main = document.getElementById('main');
const topbar = document.getElementById('topbar');
const flashBox = document.getElementById('flash');

// ---- routing -------------------------------------------------------------

function compile(page) {
  const names = [];
  const source = page.path.split('/').map((seg) => {
    if (seg.startsWith(':')) { names.push(seg.slice(1)); return '([^/]+)'; }
    return seg.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }).join('/');
  return { page, names, regex: new RegExp(`^${source}$`) };
}
const ROUTES = PAGES.map(compile);

// '#/devices/d1?x=1' -> {path: '/devices/d1', query}
function currentLocation() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  return {
    path: q < 0 ? raw : raw.slice(0, q),
    query: new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)),
  };
}

function findRoute(path) {
  for (const route of ROUTES) {
    const m = route.regex.exec(path);
    if (!m) continue;
    const params = {};
    try {
      route.names.forEach((name, i) => { params[name] = decodeURIComponent(m[i + 1]); });
    } catch {
      return null; // a malformed %-escape: no such page
    }
    return { page: route.page, params };
  }
  return null;
}

function allowed(page, user) {
  return !page.roles || (user !== null && page.roles.includes(user.role));
}

function navigate(path) {
  if (location.hash === `#${path}`) render();
  else location.hash = `#${path}`;
}

// ---- chrome --------------------------------------------------------------

function showFlash(f) {
  flashBox.hidden = !f;
  flashBox.className = f ? `flash flash-${f.kind}` : 'flash';
  mount(flashBox, f ? f.text : null);
}

async function logout() {
  try {
    await api.post('/api/v1/auth/logout', undefined, { redirectOn401: false });
    setFlash('You have logged out.');
  } catch (err) {
    // 401: the session had already ended; either way the user is out.
    if (!(err instanceof ApiError) || err.status !== 401) {
      setFlash(`Logging out failed on the server (${err.message}); the session ends when it expires.`, 'warning');
    }
  }
  live.stop();
  clearSession();
  navigate('/login');
}

function renderTopbar(path) {
  const user = session.user;
  topbar.hidden = user === null;
  if (user === null) { mount(topbar); return; }
  const links = PAGES.filter((p) => p.nav && allowed(p, user)).map((p) =>
    h('a', { href: `#${p.path}`, class: p.path === path ? 'active' : null, 'aria-current': p.path === path ? 'page' : null }, p.nav));
  mount(topbar,
    h('a', { class: 'brand', href: '#/' }, 'pulsegate'),
    h('nav', { class: 'nav' }, links),
    h('span', { class: 'who', title: user.tenant ? `${user.role} · ${user.tenant}` : user.role },
      h('span', { class: 'who-name' }, user.username)),
    h('button', { type: 'button', class: 'secondary', onclick: logout }, 'Log out'));
}

// ---- rendering -----------------------------------------------------------

let generation = 0;
let leaving = [];

function leave() {
  const fns = leaving;
  leaving = [];
  for (const fn of fns) {
    try { fn(); } catch (err) { console.error('onLeave handler failed', err); }
  }
}

async function render() {
  const mine = ++generation;
  leave();
  const { path, query } = currentLocation();
  const route = findRoute(path);

  if (route && route.page.requiresLogin !== false && session.user === null) {
    setReturnTo(location.hash.replace(/^#/, '') || '/');
    navigate('/login');
    return;
  }
  if (route && route.page === loginPage && session.user !== null) { navigate('/'); return; }

  renderTopbar(path);
  showFlash(takeFlash());
  if (route && !allowed(route.page, session.user)) {
    document.title = 'Not allowed · pulsegate';
    mount(main, h('section', { class: 'card', 'data-page': 'forbidden' },
      h('h1', null, 'Not allowed'),
      h('p', { 'data-forbidden': true, role: 'alert' }, 'Your role cannot use this page. ', h('a', { href: '#/' }, 'Go to the dashboard'), '.')));
    return;
  }
  if (!route) {
    document.title = 'Not found · pulsegate';
    mount(main, h('section', { class: 'card' },
      h('h1', null, 'Page not found'),
      h('p', { 'data-not-found': '' }, 'There is no page at ', h('code', null, `#${path}`), '. ', h('a', { href: '#/' }, 'Go to the dashboard'), '.')));
    return;
  }

  const { page, params } = route;
  document.title = `${page.title} · pulsegate`;
  const ctx = {
    params,
    query,
    user: session.user,
    onLeave: (fn) => { if (mine === generation) leaving.push(fn); else fn(); },
    isCurrent: () => mine === generation,
  };
  try {
    const node = await page.render(ctx);
    if (mine === generation) mount(main, node);
  } catch (err) {
    if (mine !== generation) return;
    if (err instanceof ApiError && err.status === 401) return; // api.js went to the login page
    console.error(err);
    const message = err instanceof ApiError ? err.message : 'Something went wrong in the page; the browser console has the details.';
    mount(main, h('section', { class: 'card error' }, h('h1', null, page.title), h('p', { role: 'alert' }, message)));
  }
}

// ---- start ---------------------------------------------------------------

async function start() {
  // A reloaded page still has its session cookie: get the user and the
  // CSRF token back. 401 here just means nobody is logged in.
  try {
    setSession(await api.get('/api/v1/auth/me', { redirectOn401: false }));
  } catch (err) {
    clearSession();
    if (!(err instanceof ApiError) || err.status !== 401) setFlash(err.message, 'error');
  }
  window.addEventListener('hashchange', render);
  await render();
}

start();

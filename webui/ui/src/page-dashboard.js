// #/: the tenant dashboard: the device health grid (ok / alerting /
// silent), counts, and the open alerts feed, kept current by the live feed
// (live.js) without reloading the page.

import { h, mount } from '/assets/dom.js';
import { api } from '/assets/api.js';
import { live } from '/assets/live.js';
import { enc, ago, fmtValue, listAll, activeAlerts, alertItem, liveStatus } from '/assets/util.js';

export const path = '/';
export const title = 'Dashboard';
export const nav = 'Dashboard';

// Not seen for this long: silent.
const SILENT_AFTER_MS = 60 * 60 * 1000;

export async function render(ctx) {
  if (!ctx.user.tenant) {
    // Operators have no tenant devices nor a tenant live feed.
    return h('section', { 'data-page': 'dashboard', class: 'card' },
      h('h1', null, 'Dashboard'),
      h('p', null, 'Signed in as ', h('strong', null, ctx.user.username), ` (${ctx.user.role}). The device dashboard is for tenant users.`));
  }
  let devices = [];
  const latest = new Map();      // device -> {metric: {ts, value}}
  const alerts = new Map();      // id -> alert (not closed)

  const countsBox = h('div', { class: 'counts' });
  const grid = h('div', { class: 'grid', 'aria-label': 'Devices' });
  const alertList = h('ul', { class: 'alert-list', 'aria-label': 'Open alerts' });

  function health(d) {
    const mine = [...alerts.values()].filter((a) => a.device === d.id);
    if (mine.some((a) => a.kind === 'NO_HEARTBEAT')) return 'silent';
    if (mine.length > 0) return 'alerting';
    const seen = d.last_seen ? Date.parse(d.last_seen) : null;
    if (seen === null || Date.now() - seen > SILENT_AFTER_MS) return 'silent';
    return 'ok';
  }

  function count(name, label, n) {
    return h('div', { class: `count count-${name}` }, h('span', { class: 'n', 'data-count': name }, String(n)), h('span', { class: 'what' }, label));
  }

  function draw() {
    const states = devices.map((d) => [d, health(d)]);
    const alerting = states.filter(([, s]) => s === 'alerting').length;
    const silent = states.filter(([, s]) => s === 'silent').length;
    mount(countsBox,
      count('devices', 'devices', devices.length),
      count('alerting', 'alerting', alerting),
      count('silent', 'silent', silent),
      count('open-alerts', 'open alerts', alerts.size));
    mount(grid, states.length === 0
      ? h('p', { class: 'muted' }, 'No devices yet. ', h('a', { href: '#/devices' }, 'Add one'), '.')
      : states.map(([d, s]) => {
        const values = latest.get(d.id) ?? {};
        return h('a', { class: `tile ${s}`, href: `#/devices/${enc(d.id)}`, 'data-device': d.id },
          h('span', { class: 'tile-head' }, h('strong', null, d.name || d.id), h('span', { class: 'tile-state' }, s)),
          h('span', { class: 'muted tile-id' }, d.id),
          h('span', { class: 'tile-values' }, Object.entries(values).slice(0, 4).map(([m, v]) =>
            h('span', { class: 'kv' }, h('span', { class: 'k' }, m), ' ', h('span', { class: 'v' }, fmtValue(v.value))))),
          h('span', { class: 'muted' }, 'seen ', ago(d.last_seen)));
      }));
    const list = [...alerts.values()].sort((a, b) => b.id - a.id);
    mount(alertList, list.length === 0 ? h('li', { class: 'muted empty' }, 'No open alerts.') : list.map(alertItem));
  }

  async function load() {
    const [devs, act] = await Promise.all([listAll(api, '/api/v1/devices'), activeAlerts(api)]);
    devices = devs;
    alerts.clear();
    for (const a of act) alerts.set(a.id, a);
    await Promise.all(devices.slice(0, 200).map(async (d) => {
      try { latest.set(d.id, (await api.get(`/api/v1/devices/${enc(d.id)}/telemetry/latest`)).metrics ?? {}); } catch { /* shown without values */ }
    }));
  }

  await load();
  if (!ctx.isCurrent()) return h('section');
  draw();

  const off = live.subscribe({
    alerts: true,
    onAlert(ev) {
      const a = ev.alert;
      if (!a) return;
      if (a.status === 'closed' || ev.event === 'closed' || ev.event === 'alert.closed') alerts.delete(a.id);
      else alerts.set(a.id, a);
      const d = devices.find((x) => x.id === a.device);
      if (d && a.last_seen_at && (!d.last_seen || a.last_seen_at > d.last_seen)) d.last_seen = a.last_seen_at;
      draw();
    },
    async onResync() {
      try { await load(); if (ctx.isCurrent()) draw(); } catch (err) { console.error(err); }
    },
  });
  ctx.onLeave(off);
  // Live readings of the first devices (the feed takes at most 50 at once):
  // latest values and last seen on the tiles.
  let redraw = null;
  for (const d of devices.slice(0, 40)) {
    ctx.onLeave(live.subscribe({
      device: d.id,
      onTelemetry(msg) {
        const cur = latest.get(d.id) ?? {};
        for (const [m, v] of Object.entries(msg.values ?? {})) cur[m] = { ts: msg.ts, value: v };
        latest.set(d.id, cur);
        d.last_seen = new Date(msg.ts).toISOString();
        if (!redraw) redraw = setTimeout(() => { redraw = null; if (ctx.isCurrent()) draw(); }, 250);
      },
    }));
  }
  ctx.onLeave(() => { if (redraw) clearTimeout(redraw); });
  const tick = setInterval(draw, 30000);
  ctx.onLeave(() => clearInterval(tick));

  return h('section', { 'data-page': 'dashboard', class: 'page' },
    h('div', { class: 'page-head' }, h('h1', null, 'Dashboard'), liveStatus(live, ctx.onLeave)),
    countsBox,
    h('div', { class: 'dash' },
      h('section', { class: 'card' }, h('h2', null, 'Devices'), grid),
      h('section', { class: 'card' }, h('h2', null, 'Open alerts'), alertList)));
}

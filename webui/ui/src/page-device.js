// #/devices/<id>: one device: live gauges of the latest values, a uPlot
// chart per metric (1h/6h/24h/7d; live readings appended) and its alerts.

import { h, mount } from '/assets/dom.js';
import { api, ApiError } from '/assets/api.js';
import { live } from '/assets/live.js';
import uPlot from '/assets/uPlot.esm.js';
import { enc, ago, fmtValue, labelsText, listAll, alertItem, notFound, liveStatus } from '/assets/util.js';

export const path = '/devices/:id';
export const title = 'Device';
export const roles = ['tenant_admin', 'tenant_viewer'];

const RANGES = { '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 86400e3 };

export async function render(ctx) {
  const id = ctx.params.id;
  let device;
  try {
    device = await api.get(`/api/v1/devices/${enc(id)}`);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 400)) {
      return h('section', { 'data-page': 'device' }, notFound('Device not found', err.message));
    }
    throw err;
  }
  const [latestBody, metricsBody, alertsAll] = await Promise.all([
    api.get(`/api/v1/devices/${enc(id)}/telemetry/latest`),
    api.get(`/api/v1/devices/${enc(id)}/metrics`),
    listAll(api, `/api/v1/alerts?device=${enc(id)}`, 200),
  ]);
  if (!ctx.isCurrent()) return h('section');

  const latest = latestBody.metrics ?? {};
  const metrics = [...new Set([...(metricsBody.metrics ?? []), ...Object.keys(latest)])].sort();
  const gaugesBox = h('div', { class: 'gauges' });
  const chartsBox = h('div', { class: 'charts' });
  const alertList = h('ul', { class: 'alert-list', 'aria-label': 'Alerts of this device' });
  const seen = h('span', null, ago(device.last_seen));
  let range = '1h';
  const charts = new Map(); // metric -> {plot, data: [xs, ys, mins, maxs], el}
  const alerts = new Map(alertsAll.map((a) => [a.id, a]));

  function drawGauges() {
    mount(gaugesBox, metrics.length === 0 ? h('p', { class: 'muted' }, 'No readings yet.') : metrics.map((m) => {
      const v = latest[m];
      return h('div', { class: 'gauge', 'data-gauge': m },
        h('span', { class: 'gauge-name' }, m),
        h('span', { class: 'gauge-value' }, v ? fmtValue(v.value) : '—'),
        h('span', { class: 'muted gauge-ts' }, v ? ago(v.ts) : ''));
    }));
  }

  function drawAlerts() {
    const list = [...alerts.values()].sort((a, b) => b.id - a.id);
    mount(alertList, list.length === 0 ? h('li', { class: 'muted empty' }, 'No alerts.') : list.map(alertItem));
  }

  function chartWidth(el) { return Math.max(260, (el.clientWidth || chartsBox.clientWidth || 600) - 8); }

  async function loadCharts() {
    for (const c of charts.values()) c.plot.destroy();
    charts.clear();
    const to = Date.now();
    const from = to - RANGES[range];
    const blocks = metrics.map((m) => {
      const el = h('div', { class: 'chart-body' });
      const block = h('figure', { class: 'chart', 'data-chart': m }, h('figcaption', null, m), el);
      return { m, el, block };
    });
    mount(chartsBox, blocks.length === 0 ? h('p', { class: 'muted' }, 'No metrics yet.') : blocks.map((b) => b.block));
    await Promise.all(blocks.map(async ({ m, el }) => {
      const body = await api.get(`/api/v1/devices/${enc(id)}/telemetry?metric=${enc(m)}&from=${from}&to=${to}&max_points=600`);
      if (!ctx.isCurrent()) return;
      const pts = body.points ?? [];
      const bucketed = body.source !== 'raw';
      const data = [pts.map((p) => p.ts / 1000), pts.map((p) => p.value)];
      if (bucketed) data.push(pts.map((p) => p.min ?? p.value), pts.map((p) => p.max ?? p.value));
      const css = getComputedStyle(document.documentElement);
      const accent = css.getPropertyValue('--accent').trim() || '#0b5cad';
      const muted = css.getPropertyValue('--muted').trim() || '#888';
      const axis = { stroke: muted, grid: { stroke: 'rgba(128,128,128,.2)' }, ticks: { stroke: 'rgba(128,128,128,.3)' } };
      const opts = {
        width: chartWidth(el), height: 200,
        scales: { x: { time: true } },
        legend: { show: true },
        axes: [axis, axis],
        series: [{}, { label: m, stroke: accent, width: 2 },
          ...(bucketed ? [{ label: 'min', stroke: muted, dash: [4, 4], width: 1 },
            { label: 'max', stroke: muted, dash: [4, 4], width: 1 }] : [])],
      };
      const plot = new uPlot(opts, data, el);
      charts.set(m, { plot, data, el });
    }));
  }

  function append(ts, values) {
    for (const [m, v] of Object.entries(values)) {
      if (typeof v !== 'number') continue;
      latest[m] = { ts, value: v };
      if (!metrics.includes(m)) { metrics.push(m); metrics.sort(); }
      const c = charts.get(m);
      if (c) {
        const x = ts / 1000;
        const cut = (Date.now() - RANGES[range]) / 1000;
        let drop = 0;
        while (drop < c.data[0].length && c.data[0][drop] < cut) drop++;
        c.data = c.data.map((arr, i) => [...arr.slice(drop), i === 0 ? x : v]);
        c.plot.setData(c.data);
      }
    }
    drawGauges();
  }

  const rangeButtons = Object.keys(RANGES).map((r) => h('button', {
    type: 'button', class: r === range ? 'range active' : 'range secondary', 'aria-pressed': String(r === range),
    onclick: async () => {
      range = r;
      for (const b of rangeButtons) {
        const on = b.textContent === r;
        b.className = on ? 'range active' : 'range secondary';
        b.setAttribute('aria-pressed', String(on));
      }
      try { await loadCharts(); } catch (err) { console.error(err); }
    },
  }, r));

  const onResize = () => { for (const c of charts.values()) c.plot.setSize({ width: chartWidth(c.el), height: 200 }); };
  window.addEventListener('resize', onResize);
  ctx.onLeave(() => { window.removeEventListener('resize', onResize); for (const c of charts.values()) c.plot.destroy(); });

  ctx.onLeave(live.subscribe({
    device: id,
    onTelemetry(msg) { seen.textContent = 'just now'; append(msg.ts, msg.values ?? {}); },
  }));
  ctx.onLeave(live.subscribe({
    alerts: true,
    onAlert(ev) { if (ev.alert && ev.alert.device === id) { alerts.set(ev.alert.id, ev.alert); drawAlerts(); } },
    async onResync() {
      try {
        const l = await api.get(`/api/v1/devices/${enc(id)}/telemetry/latest`);
        Object.assign(latest, l.metrics ?? {});
        drawGauges();
        for (const a of await listAll(api, `/api/v1/alerts?device=${enc(id)}`, 200)) alerts.set(a.id, a);
        drawAlerts();
        await loadCharts();
      } catch (err) { console.error(err); }
    },
  }));

  drawGauges();
  drawAlerts();
  const page = h('section', { 'data-page': 'device', class: 'page' },
    h('div', { class: 'page-head' },
      h('h1', null, device.name || device.id),
      liveStatus(live, ctx.onLeave)),
    h('dl', { class: 'facts' },
      h('dt', null, 'ID'), h('dd', null, h('code', null, device.id)),
      h('dt', null, 'Status'), h('dd', null, device.status),
      h('dt', null, 'Labels'), h('dd', null, labelsText(device.labels) || '—'),
      h('dt', null, 'Last seen'), h('dd', null, seen)),
    h('section', { class: 'card' }, h('h2', null, 'Latest values'), gaugesBox),
    h('section', { class: 'card' },
      h('div', { class: 'page-head' }, h('h2', null, 'History'), h('div', { class: 'ranges', role: 'group', 'aria-label': 'Time range' }, rangeButtons)),
      chartsBox),
    h('section', { class: 'card' }, h('h2', null, 'Alerts'), alertList));
  // The charts need the page in the document to measure their width.
  setTimeout(() => { if (ctx.isCurrent()) loadCharts().catch((err) => console.error(err)); }, 0);
  return page;
}

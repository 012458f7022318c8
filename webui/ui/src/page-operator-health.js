// #/operator/health: GET /readyz checks and a few figures from GET /metrics
// (Prometheus text: summed over labels). Refreshes every 10 s while open.

import { h, mount } from '/assets/dom.js';
import { pageShell, table } from '/assets/forms.js';

export const path = '/operator/health';
export const title = 'System health';
export const nav = 'Health';
export const roles = ['operator_admin', 'operator'];

const FIGURES = [
  ['MQTT clients connected', 'pulsegate_mqtt_clients_connected'],
  ['MQTT connections (total)', 'pulsegate_mqtt_connections_total'],
  ['MQTT messages received', 'pulsegate_mqtt_publish_received_total'],
  ['MQTT messages sent', 'pulsegate_mqtt_publish_sent_total'],
  ['Readings ingested', 'pulsegate_ingest_readings_total'],
  ['Storage points written', 'pulsegate_storage_points_written_total'],
  ['Storage series', 'pulsegate_storage_series'],
  ['Storage queued operations', 'pulsegate_storage_queued_operations'],
  ['Outbox depth', 'pulsegate_delivery_outbox_depth'],
  ['Delivery attempts', 'pulsegate_delivery_attempts_total'],
  ['Delivery circuits opened', 'pulsegate_delivery_circuits_opened_total'],
  ['Deliveries delivered', 'pulsegate_delivery_delivered_total'],
  ['Delivery retries', 'pulsegate_delivery_retries_total'],
  ['Deliveries dead', 'pulsegate_delivery_dead_total'],
  ['Open alerts', 'pulsegate_alerts_open'],
  ['Live feed clients', 'pulsegate_live_feed_clients'],
];

// name -> sum of its samples (labels summed over)
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    out.set(m[1], (out.get(m[1]) ?? 0) + v);
  }
  return out;
}

async function fetchText(url) {
  const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  return { status: res.status, text: await res.text() };
}

export async function render(ctx) {
  const shell = pageShell('operator-health', 'System health',
    h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh'));
  const checks = h('div', { class: 'checks' });
  const figures = h('div', { class: 'figures' });
  shell.fill(h('h2', null, 'Readiness'), checks, h('h2', null, 'Figures'), figures);

  async function load() {
    try {
      const [ready, metrics] = await Promise.all([fetchText('/readyz'), fetchText('/metrics')]);
      if (!ctx.isCurrent()) return;
      let r = {};
      try { r = JSON.parse(ready.text); } catch { r = { status: `HTTP ${ready.status}`, checks: [] }; }
      mount(checks,
        h('p', { 'data-ready': r.status }, 'Status: ', h('strong', { class: r.status === 'ready' ? 'check-ok' : 'check-bad' }, r.status ?? `HTTP ${ready.status}`)),
        table([
          { title: 'Check', cell: (c) => c.name },
          { title: 'Status', cell: (c) => h('span', { class: c.status === 'ok' ? 'check-ok' : 'check-bad' }, c.status) },
          { title: 'Detail', cell: (c) => c.message ?? c.error ?? c.detail ?? '' },
        ], r.checks ?? [], (c) => ({ 'data-check': c.name })));
      if (metrics.status !== 200) { mount(figures, h('p', { class: 'muted' }, `GET /metrics answered ${metrics.status}.`)); }
      else {
        const m = parseMetrics(metrics.text);
        mount(figures, FIGURES.filter(([, name]) => m.has(name)).map(([label, name]) =>
          h('div', { class: 'figure', 'data-metric': name }, h('span', { class: 'n' }, m.get(name).toLocaleString()), h('span', { class: 'muted' }, label))));
      }
      shell.say(`Updated ${new Date().toLocaleTimeString()}.`);
    } catch (err) { shell.say(`Could not load health: ${err.message}`, 'error'); }
  }
  await load();
  const timer = setInterval(load, 10000);
  ctx.onLeave(() => clearInterval(timer));
  return shell.root;
}

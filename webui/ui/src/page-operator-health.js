// #/operator/health: GET /readyz checks, the upstream bridges (one row per
// `bridge` label of the pulsegate_bridge_* series) and a few figures from
// GET /metrics (Prometheus text: summed over labels). Refreshes every 10 s
// while open.

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

// Every sample as {name, labels: {k: v}, value}, in text order (label values
// unescaped; samples that are not finite numbers left out).
export function parseSeries(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const value = Number(m[3]);
    if (!Number.isFinite(value)) continue;
    const labels = {};
    for (const [, k, v] of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[k] = v.replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value });
  }
  return out;
}

const BRIDGE_FIELDS = {
  pulsegate_bridge_connected: 'connected',
  pulsegate_bridge_queued_messages: 'queued',
  pulsegate_bridge_oldest_queued_age_seconds: 'oldest',
  pulsegate_bridge_in_flight_messages: 'inFlight',
  pulsegate_bridge_sent_total: 'sent',
  pulsegate_bridge_imported_total: 'imported',
};

// The bridges named in the series, sorted by name: {name, connected, queued,
// oldest (s), inFlight, sent, imported, dropped: {reason: n}}.
function bridgeRows(series) {
  const byName = new Map();
  for (const s of series) {
    const name = s.labels.bridge;
    if (name === undefined || !s.name.startsWith('pulsegate_bridge_')) continue;
    if (!byName.has(name)) byName.set(name, { name, connected: 0, queued: 0, oldest: 0, inFlight: 0, sent: 0, imported: 0, dropped: {} });
    const b = byName.get(name);
    if (s.name === 'pulsegate_bridge_dropped_total') b.dropped[s.labels.reason ?? 'other'] = s.value;
    else if (BRIDGE_FIELDS[s.name]) b[BRIDGE_FIELDS[s.name]] = s.value;
  }
  return [...byName.values()].sort((a, b) => a.name.localeCompare(b.name));
}

// Seconds as "—" (0: nothing queued), "42 s", "3 min", "5 h", "2 d".
function fmtAge(s) {
  if (!(s > 0)) return '—';
  if (s < 1) return '< 1 s';
  if (s < 60) return `${Math.floor(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h`;
  return `${Math.floor(s / 86400)} d`;
}

const n = (v) => v.toLocaleString();
const cell = (col, content, attrs = {}) => h('span', { 'data-col': col, ...attrs }, content);

const BRIDGE_COLUMNS = [
  { title: 'Bridge', cell: (b) => cell('name', b.name) },
  { title: 'State', cell: (b) => cell('state', b.connected === 1 ? 'connected' : 'disconnected', { class: b.connected === 1 ? 'check-ok' : 'check-bad' }) },
  { title: 'Queued', cell: (b) => cell('queued', n(b.queued)) },
  { title: 'Oldest queued', cell: (b) => cell('oldest', fmtAge(b.oldest)) },
  { title: 'In flight', cell: (b) => cell('in-flight', n(b.inFlight)) },
  { title: 'Sent', cell: (b) => cell('sent', n(b.sent)) },
  { title: 'Imported', cell: (b) => cell('imported', n(b.imported)) },
  { title: 'Dropped', cell: (b) => {
    const reasons = Object.entries(b.dropped);
    return cell('dropped', n(reasons.reduce((sum, [, v]) => sum + v, 0)),
      { title: reasons.map(([r, v]) => `${r}: ${n(v)}`).join(', ') || null });
  } },
];

async function fetchText(url) {
  const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
  return { status: res.status, text: await res.text() };
}

export async function render(ctx) {
  const shell = pageShell('operator-health', 'System health',
    h('button', { type: 'button', class: 'secondary', onclick: () => load() }, 'Refresh'));
  const checks = h('div', { class: 'checks' });
  const bridges = h('div', { class: 'bridges' });
  const figures = h('div', { class: 'figures' });
  shell.fill(h('h2', null, 'Readiness'), checks, h('h2', null, 'Bridges'), bridges, h('h2', null, 'Figures'), figures);

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
      if (metrics.status !== 200) {
        for (const el of [bridges, figures]) mount(el, h('p', { class: 'muted' }, `GET /metrics answered ${metrics.status}.`));
      } else {
        mount(bridges, table(BRIDGE_COLUMNS, bridgeRows(parseSeries(metrics.text)), (b) => ({ 'data-bridge': b.name }),
          'No bridges configured.'));
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

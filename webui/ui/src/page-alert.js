// #/alerts/<id>: one alert, its actions and its delivery attempts.

import { h, mount } from '/assets/dom.js';
import { api, ApiError } from '/assets/api.js';
import { live } from '/assets/live.js';
import { enc, fmtTime, fmtValue, listAll, severityBadge, statusBadge, notFound } from '/assets/util.js';
import { alertActions } from '/assets/page-alerts.js';

export const path = '/alerts/:id';
export const title = 'Alert';
export const roles = ['tenant_admin', 'tenant_viewer'];

export async function render(ctx) {
  const id = ctx.params.id;
  let alert;
  try {
    alert = await api.get(`/api/v1/alerts/${enc(id)}`);
  } catch (err) {
    if (err instanceof ApiError && (err.status === 404 || err.status === 400)) {
      return h('section', { 'data-page': 'alert' }, notFound('Alert not found', err.message));
    }
    throw err;
  }
  let deliveries = await listAll(api, `/api/v1/deliveries?alert=${enc(id)}`, 500);
  if (!ctx.isCurrent()) return h('section');
  const canWrite = ctx.user.role === 'tenant_admin';
  const box = h('div', { class: 'page' });
  const errBox = h('p', { class: 'form-error', role: 'alert' });

  function draw() {
    const a = alert;
    mount(box,
      h('div', { 'data-alert-id': a.id, class: 'card' },
        h('p', { class: 'msg' }, a.message),
        h('p', null, severityBadge(a.severity), ' ', statusBadge(a.status), ' ', alertActions(a, canWrite, (u) => { if (u) alert = u; draw(); }, errBox)),
        h('dl', { class: 'facts' },
          h('dt', null, 'Device'), h('dd', null, h('a', { href: `#/devices/${enc(a.device)}` }, a.device)),
          h('dt', null, 'Rule'), h('dd', null, a.rule_name ?? String(a.rule)),
          h('dt', null, 'Kind'), h('dd', null, a.kind),
          a.metric && [h('dt', null, 'Metric'), h('dd', null, `${a.metric}: ${fmtValue(a.last_value)} (threshold ${fmtValue(a.threshold)})`)],
          h('dt', null, 'Opened'), h('dd', null, fmtTime(a.opened_at)),
          h('dt', null, 'Last seen'), h('dd', null, fmtTime(a.last_seen_at)),
          h('dt', null, 'Count'), h('dd', null, String(a.count)),
          a.acknowledged_at && [h('dt', null, 'Acknowledged'), h('dd', null, `${fmtTime(a.acknowledged_at)} by ${a.acknowledged_by ?? '?'}`)],
          a.closed_at && [h('dt', null, 'Closed'), h('dd', null, `${fmtTime(a.closed_at)} by ${a.closed_by ?? '?'} (${a.close_reason ?? ''})`)])),
      errBox,
      h('section', { class: 'card' }, h('h2', null, 'Deliveries'),
        deliveries.length === 0 ? h('p', { class: 'muted' }, 'No deliveries for this alert.')
          : h('div', { class: 'table-wrap' }, h('table', { class: 'table' },
            h('thead', null, h('tr', null, ['ID', 'Integration', 'Event', 'Status', 'Attempts', 'Error and attempts', 'Updated'].map((t) => h('th', { scope: 'col' }, t)))),
            h('tbody', null, deliveries.map((d) => h('tr', { 'data-delivery-id': d.id },
              h('td', null, String(d.id)), h('td', null, String(d.integration)), h('td', null, d.event),
              h('td', null, d.status), h('td', null, `${d.attempts}/${d.max_attempts ?? '?'}`),
              h('td', { class: 'msg' }, d.last_error ?? '',
                Array.isArray(d.attempt_log) && d.attempt_log.length > 0 && h('ol', { class: 'attempts' }, d.attempt_log.map((t) =>
                  h('li', null, `${fmtTime(t.started_at)}: ${t.outcome ?? ''}`, t.status ? ` (${t.status})` : '',
                    t.latency_ms !== undefined ? ` ${t.latency_ms} ms` : '', t.error ? ` — ${t.error}` : '')))),
              h('td', { class: 'muted' }, fmtTime(d.updated_at)))))))));
  }
  draw();
  ctx.onLeave(live.subscribe({
    alerts: true,
    onAlert(ev) { if (ev.alert && String(ev.alert.id) === String(id)) { alert = ev.alert; draw(); } },
    async onResync() {
      try {
        alert = await api.get(`/api/v1/alerts/${enc(id)}`);
        deliveries = await listAll(api, `/api/v1/deliveries?alert=${enc(id)}`, 500);
        draw();
      } catch (err) { console.error(err); }
    },
  }));
  return h('section', { 'data-page': 'alert', class: 'page' },
    h('p', null, h('a', { href: '#/alerts' }, '← Alerts')),
    h('h1', null, `Alert #${alert.id}`), box);
}

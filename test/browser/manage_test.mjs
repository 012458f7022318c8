// Management through the pages: create a threshold rule and a webhook
// integration, send a test delivery to a real HTTP receiver on loopback and
// see its outcome; an invalid field is reported next to it. An operator's
// visit to the audit page is itself in the audit log. Long lists come a page
// at a time with "Load more"; the delivery log and rejected events show theirs.
// The System health page lists the upstream bridges: none here, and on a
// second daemon bridged to a Mosquitto, connected with a forwarded reading
// counted, then disconnected with a reading queued once Mosquitto stops.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Daemon, Mosquitto, browser, uiLogin, screenshot, eventually, ADMIN_PASSWORD, USER_PASSWORD } from './harness.mjs';

let d, b, t, receiver, received = [];
before(async () => {
  receiver = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => { body += c; });
    req.on('end', () => { received.push({ headers: req.headers, body }); res.writeHead(204); res.end(); });
  });
  await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
  d = await Daemon.start({ PULSEGATE_DELIVERY_ALLOW_PRIVATE_TARGETS: '127.0.0.0/8' });
  t = await d.tenant('acme', [{ id: 'boiler' }]);
  b = await browser();
});
after(async () => {
  await b?.close();
  await d?.stop();
  receiver?.close();
});

test('create a rule and a webhook integration, and send a test delivery', async () => {
  const page = await b.newPage();
  await uiLogin(page, d.base, t.user, USER_PASSWORD);

  await page.goto(`${d.base}/#/rules`);
  await page.getByRole('button', { name: 'New rule' }).click();
  await page.getByLabel('Name', { exact: true }).fill('too hot');
  await page.getByLabel('Metric').fill('temp/x'); // the server refuses '/' in a metric name
  await page.getByLabel('Operator').selectOption('>');
  await page.getByLabel('Value', { exact: true }).fill('80');
  await page.getByRole('button', { name: 'Save' }).click();
  const error = page.locator('[data-error-for="metric"]');
  await error.waitFor();
  assert.match(await error.textContent(), /metric/);
  await page.getByLabel('Metric').fill('temp');
  await page.getByRole('button', { name: 'Save' }).click();
  await page.locator('[data-rule-id]', { hasText: 'too hot' }).waitFor();
  const rules = await t.admin.call('GET', '/api/v1/rules');
  assert.equal(rules.items.length, 1);
  assert.equal(rules.items[0].metric, 'temp');
  await screenshot(page, 'rules');

  await page.goto(`${d.base}/#/integrations`);
  await page.getByRole('button', { name: 'New integration' }).click();
  await page.getByLabel('Name', { exact: true }).fill('ops hook');
  await page.getByLabel('Type').selectOption('webhook');
  await page.getByLabel('URL').fill(`http://127.0.0.1:${receiver.address().port}/hook`);
  await page.getByRole('button', { name: 'Save' }).click();
  const row = page.locator('[data-integration-id]', { hasText: 'ops hook' });
  await row.waitFor();
  await row.getByRole('button', { name: 'Send test' }).click();
  const result = page.locator('[data-test-result]');
  await eventually(async () => /delivered/.test((await result.first().textContent()) ?? ''), 'the test outcome');
  assert.equal(received.length, 1);
  assert.equal(JSON.parse(received[0].body).alert.device !== undefined, true);
  await screenshot(page, 'integrations');

  // An alert routed to the hook is in the delivery log: one page, nothing
  // more to load.
  const hook = (await t.admin.call('GET', '/api/v1/integrations')).items.find((i) => i.name === 'ops hook');
  await t.admin.call('POST', '/api/v1/routes', { name: 'all', integrations: [hook.id], match: {} });
  d.publish('acme', 'boiler', t.secrets.boiler, '{"temp":95}');
  const deliveries = await eventually(async () => {
    const l = await t.admin.call('GET', '/api/v1/deliveries');
    return l.items.length > 0 && l;
  }, 'a delivery of the alert');
  await page.goto(`${d.base}/#/deliveries`);
  await page.locator('[data-delivery-id]').first().waitFor();
  assert.equal(await page.locator('[data-delivery-id]').count(), deliveries.items.length);
  assert.equal(await page.getByRole('button', { name: 'Load more' }).isVisible(), false);
  assert.deepEqual(b.problems, []);
});

test('long lists come a page at a time; Load more appends the next page', async () => {
  // The page size the UI asks for, from the script the daemon serves.
  const util = await (await fetch(`${d.base}/assets/util.js`)).text();
  const pageSize = Number(util.match(/export const PAGE_SIZE = (\d+);/)[1]);
  const n = pageSize + 5;
  const ids = Array.from({ length: n }, (_, i) => `bulk-${String(i).padStart(4, '0')}`);
  await d.tenant('bulk', ids.map((id) => ({ id })));
  // A refused connection for the rejected events page (mosquitto_pub fails).
  assert.throws(() => d.publish('acme', 'boiler', 'not-the-secret', '{"temp":1}'));

  const page = await b.newPage();
  await uiLogin(page, d.base, 'admin', ADMIN_PASSWORD);
  await page.goto(`${d.base}/#/operator/devices?tenant=bulk`);
  const rows = page.locator('[data-page="operator-devices"] tbody tr[data-device]');
  await rows.first().waitFor();
  assert.equal(await rows.count(), pageSize);
  const more = page.getByRole('button', { name: 'Load more' });
  assert.equal(await more.isVisible(), true);
  // By keyboard: focus it and press Enter.
  await more.focus();
  await page.keyboard.press('Enter');
  await eventually(async () => (await rows.count()) === n, `${n} rows`);
  const shown = await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.device));
  assert.deepEqual([...shown].sort(), ids, 'every device once');
  assert.equal(await more.isVisible(), false, 'no Load more after the last page');
  assert.match(await page.locator('.pager-status').textContent(), new RegExp(`All ${n} shown`));
  assert.equal(await page.evaluate(() => document.activeElement.classList.contains('pager-status')), true,
    'the focus stays in the list, not on the hidden button');
  await screenshot(page, 'operator-devices-more');

  // The rejected events page: its first page, the refused connection on it.
  await page.goto(`${d.base}/#/operator/rejected`);
  await page.locator('[data-page="operator-rejected"]').waitFor();
  const rejected = page.locator('[data-rejected-id]');
  await eventually(async () => {
    await page.reload();
    await page.locator('[data-page="operator-rejected"]').waitFor();
    return (await rejected.count()) > 0;
  }, 'the refused connection on the rejected events page');
  assert.match(await rejected.first().textContent(), /boiler/);
  assert.equal(await more.isVisible(), false);
  assert.deepEqual(b.problems, []);
});

test('an operator opening the audit page is in the audit log', async () => {
  const page = await b.newPage();
  // More entries than the page's 100: one per tenant created.
  const op = await d.login('admin', ADMIN_PASSWORD);
  for (let i = 0; i < 101; i++) await op.call('POST', '/api/v1/operator/tenants', { id: `audited-${i}` });
  await uiLogin(page, d.base, 'admin', ADMIN_PASSWORD);
  await page.goto(`${d.base}/#/operator/audit`);
  const rows = page.locator('[data-audit-id]');
  await rows.first().waitFor();
  assert.equal(await rows.count(), 100);
  await page.getByRole('button', { name: 'Older' }).click();
  await eventually(async () => (await rows.count()) > 100, 'older entries below the first page');
  const ids = await rows.evaluateAll((trs) => trs.map((tr) => Number(tr.dataset.auditId)));
  assert.equal(new Set(ids).size, ids.length, 'no entry twice');
  assert.deepEqual(ids, [...ids].sort((x, y) => y - x), 'newest first, older ones appended');
  await screenshot(page, 'operator-audit');
  const audit = await op.call('GET', '/api/v1/operator/audit');
  assert.ok(audit.items.some((e) => e.actor === 'user:admin' && /audit/.test(JSON.stringify(e))),
    JSON.stringify(audit.items.slice(0, 3)));
});

test('the health page shows each bridge: connected and sending, then disconnected and queueing', async () => {
  const page = await b.newPage();
  await uiLogin(page, d.base, 'admin', ADMIN_PASSWORD);
  await page.goto(`${d.base}/#/operator/health`);
  await page.getByText('No bridges configured.').waitFor();
  assert.equal(await page.locator('[data-bridge]').count(), 0);

  const up = await Mosquitto.start();
  let bd;
  try {
    bd = await Daemon.start({}, { toml: `
[[bridge]]
name = "cloud"
url = "mqtt://127.0.0.1:${up.port}"
reconnect_max_s = 1
forward = [{ filter = "t/+/d/+/telemetry", prefix = "site-1/" }]
` });
    const site = await bd.tenant('site', [{ id: 's1' }]);
    bd.publish('site', 's1', site.secrets.s1, '{"t":1}');

    const p2 = await b.newPage();
    await uiLogin(p2, bd.base, 'admin', ADMIN_PASSWORD);
    await p2.goto(`${bd.base}/#/operator/health`);
    const row = p2.locator('[data-bridge="cloud"]');
    const col = (name) => row.locator(`[data-col="${name}"]`).textContent();
    const refresh = p2.getByRole('button', { name: 'Refresh' });
    // Refreshed by hand until the reading is acknowledged upstream.
    await eventually(async () => {
      await refresh.click();
      return (await row.count()) === 1 && await col('sent') === '1';
    }, 'the bridge row with one reading sent', 20000);
    assert.equal(await col('name'), 'cloud');
    assert.equal(await col('state'), 'connected');
    assert.match(await row.locator('[data-col="state"]').getAttribute('class'), /\bcheck-ok\b/);
    assert.equal(await col('queued'), '0');
    assert.equal(await col('oldest'), '—');
    assert.equal(await col('in-flight'), '0');
    assert.equal(await col('imported'), '0');
    assert.equal(await col('dropped'), '0');
    assert.equal(await row.locator('[data-col="dropped"]').getAttribute('title'),
      'max_messages: 0, max_age: 0, full: 0, overflow: 0');
    assert.equal(await p2.locator('[data-bridge]').count(), 1);
    await screenshot(p2, 'operator-health-bridge-connected');

    await up.stop();
    await eventually(async () => {
      await refresh.click();
      return await col('state') === 'disconnected';
    }, 'the bridge shown disconnected', 20000);
    assert.match(await row.locator('[data-col="state"]').getAttribute('class'), /\bcheck-bad\b/);
    // While the uplink is down a reading waits in the queue.
    bd.publish('site', 's1', site.secrets.s1, '{"t":2}');
    await eventually(async () => {
      await refresh.click();
      return await col('queued') === '1';
    }, 'one reading queued');
    assert.notEqual(await col('oldest'), '—');
    assert.equal(await col('sent'), '1');
    await screenshot(p2, 'operator-health-bridge-disconnected');
  } finally {
    await up.stop();
    await bd?.stop();
  }
  assert.deepEqual(b.problems, []);
});

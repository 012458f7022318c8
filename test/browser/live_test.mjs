// Live pages: a device publishes over MQTT and its gauge and chart update
// without a reload; a threshold breach makes an alert appear on the
// dashboard without a reload; it is acknowledged from the alerts page.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon, browser, uiLogin, screenshot, eventually, USER_PASSWORD } from './harness.mjs';

let d, b, t;
before(async () => {
  d = await Daemon.start();
  t = await d.tenant('acme', [{ id: 'boiler', name: 'Boiler', labels: { site: 'hq' } }, { id: 'fridge' }]);
  await t.admin.call('POST', '/api/v1/rules',
    { name: 'hot', kind: 'threshold', metric: 'temp', op: '>', value: 80, severity: 'major' });
  d.publish('acme', 'boiler', t.secrets.boiler, '{"temp":20.5,"hum":40}');
  d.publish('acme', 'fridge', t.secrets.fridge, '{"temp":4}');
  b = await browser();
});
after(async () => {
  await b?.close();
  await d?.stop();
});

test('gauges and charts follow the device, alerts appear and are acknowledged live', async () => {
  const page = await b.newPage();
  await uiLogin(page, d.base, t.user, USER_PASSWORD);

  await page.goto(`${d.base}/#/devices/boiler`);
  const gauge = page.locator('[data-gauge="temp"]');
  await gauge.waitFor();
  await eventually(async () => (await gauge.textContent()).includes('20.5'), 'the stored value in the gauge');
  await page.locator('[data-chart="temp"] canvas').first().waitFor();
  await page.locator('#live-status', { hasText: 'live' }).waitFor();
  // The page subscribes once its feed is open: publish until a reading arrives.
  await eventually(async () => {
    d.publish('acme', 'boiler', t.secrets.boiler, '{"temp":23.5,"hum":41}');
    return (await gauge.textContent()).includes('23.5');
  }, 'the live value in the gauge');
  await screenshot(page, 'device');

  await page.goto(`${d.base}/#/`);
  await page.locator('[data-device="boiler"]').waitFor();
  await page.locator('#live-status', { hasText: 'live' }).waitFor();
  assert.equal(await page.locator('[data-alert-id]').count(), 0);
  const url = page.url();
  d.publish('acme', 'boiler', t.secrets.boiler, '{"temp":95}');
  const item = page.locator('[data-alert-id]').first();
  await item.waitFor();
  assert.equal(page.url(), url, 'no navigation');
  assert.match(await item.textContent(), /boiler/);
  await page.locator('[data-device="boiler"].alerting').waitFor();
  await screenshot(page, 'dashboard-alert');

  const id = await item.getAttribute('data-alert-id');
  await page.goto(`${d.base}/#/alerts`);
  const row = page.locator(`[data-alert-id="${id}"]`);
  await row.waitFor();
  await row.getByRole('button', { name: 'Acknowledge' }).click();
  await eventually(async () => /acknowledged/.test(await row.locator('[data-status]').textContent()),
    'the row to say acknowledged');
  const stored = await t.admin.call('GET', `/api/v1/alerts/${id}`);
  assert.equal(stored.status, 'acknowledged');
  assert.equal(stored.acknowledged_by, t.user);
  await screenshot(page, 'alerts');
  assert.deepEqual(b.problems, []);
});

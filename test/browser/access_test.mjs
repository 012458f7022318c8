// What a tenant user cannot reach: operator pages, and another tenant's
// device by its URL; and a device name that is an XSS payload is shown as
// text (the page never interprets it).

import { test, after, before } from 'node:test';
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { Daemon, browser, uiLogin, screenshot, eventually, USER_PASSWORD } from './harness.mjs';

const XSS = '<img src=x onerror="window.__pwned=1">"><script>window.__pwned=2</script>';
let d, b, t;
before(async () => {
  d = await Daemon.start();
  t = await d.tenant('acme', [{ id: 'evil', name: XSS, labels: { note: XSS } }]);
  await d.tenant('globex', [{ id: 'secret-device', name: 'Globex only' }]);
  b = await browser();
});
after(async () => {
  await b?.close();
  await d?.stop();
});

test('a tenant user sees no operator page and no other tenant device', async () => {
  const page = await b.newPage();
  await uiLogin(page, d.base, t.user, USER_PASSWORD);
  await page.goto(`${d.base}/#/operator/audit`);
  await page.locator('[data-forbidden]').waitFor();
  assert.equal(await page.locator('[data-audit-id]').count(), 0);
  await page.goto(`${d.base}/#/devices/secret-device`);
  await page.locator('[data-not-found]').waitFor();
  assert.doesNotMatch(await page.locator('body').textContent(), /Globex only/);
  await screenshot(page, 'other-tenant-device');
});

test('an XSS payload in a device name and label is shown as text', async () => {
  const page = await b.newPage();
  await uiLogin(page, d.base, t.user, USER_PASSWORD);
  for (const where of ['#/devices', '#/', '#/devices/evil']) {
    await page.goto(`${d.base}/${where}`);
    await page.getByText(XSS).first().waitFor();
    assert.equal(await page.evaluate(() => window.__pwned), undefined, where);
    assert.equal(await page.locator('main img[src="x"]').count(), 0, where);
  }
  await page.goto(`${d.base}/#/devices`);
  await screenshot(page, 'devices-xss');
});

test('a new device shows its secret once with a mosquitto_pub command for this server that works', async () => {
  const page = await b.newPage();
  await uiLogin(page, d.base, t.user, USER_PASSWORD);
  await page.goto(`${d.base}/#/devices`);
  await page.getByRole('button', { name: 'New device' }).click();
  await page.getByLabel('ID').fill('fresh');
  await page.getByRole('button', { name: 'Create' }).click();
  const example = page.locator('[data-example]');
  await example.waitFor();
  const cmd = await example.textContent();
  // The port of this daemon's MQTT listener (GET /api/v1/info), not 1883.
  assert.match(cmd, new RegExp(`-p ${d.mqttPort} `));
  assert.match(cmd, /-u 'acme\/fresh'/);
  await screenshot(page, 'device-created');
  execFileSync('sh', ['-c', cmd], { timeout: 15000 }); // throws unless the publish is acknowledged
  // last_seen is written within a second or so of the connection.
  await eventually(async () => (await t.admin.call('GET', '/api/v1/devices/fresh')).last_seen,
    'the command to have connected as the device');
});

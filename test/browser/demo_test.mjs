// The demo as a newcomer meets it (`serve --demo`): the address and login
// the daemon prints work in the browser; the dashboard shows the simulated
// fleet; a device page follows its live readings; demo-boiler's breach
// appears as an alert on the dashboard without a reload and is
// acknowledged from the UI.
//
// Timing (daemon/telemetry_generator.hpp, make_schedule): with a breach
// every 45 s the first starts 11 s after the start and lasts 30 s; the
// temperature is over 80 from about 14 s to 38 s, so the demo rule (> 80 for
// 10 s) opens the alert at about 25 s and it closes by itself at about 39 s.
// The test reaches the dashboard well before 25 s and acknowledges within
// that window. dock-sensor is kept talking (silent after a day) so the only
// alert is the breach.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon, browser, screenshot, eventually } from './harness.mjs';

let d, b, startedAt;
before(async () => {
  startedAt = Date.now();
  d = await Daemon.start({}, {
    args: ['--demo', '--demo-breach-every-s', '45', '--demo-silent-after-s', '86400', '--demo-rate', '2'],
  });
  b = await browser();
});
after(async () => {
  await b?.close();
  await d?.stop();
});

const since = () => `${((Date.now() - startedAt) / 1000).toFixed(1)} s after the start`;

test('the printed demo login shows the live fleet, and the breach alert is acknowledged', async () => {
  const line = await eventually(() => d.logText.match(/demo: open (http:\/\/[^\s/"]+\/) and log in as (\S+) \/ ([^\s"]+)/),
    'the demo line in the log');
  const [, address, username, password] = line;
  assert.equal(address, `${d.base}/`, 'the printed address is the one the daemon listens on');
  assert.equal(username, 'demo');

  // The printed address sends a newcomer to the login form.
  const page = await b.newPage();
  await page.goto(address);
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.locator('[data-page="dashboard"]').waitFor();

  // The six simulated devices as tiles, with live values.
  const tiles = page.locator('[data-device]');
  await eventually(async () => (await tiles.count()) === 6, 'six device tiles');
  assert.equal(await page.locator('[data-count="devices"]').textContent(), '6');
  const boilerTile = page.locator('[data-device="demo-boiler"]');
  await eventually(async () => /temperature/.test(await boilerTile.textContent()), 'a value on the boiler tile');
  await screenshot(page, 'demo-dashboard');

  // The device page: the gauge and the chart follow the readings.
  await boilerTile.click();
  await page.locator('[data-page="device"]').waitFor();
  assert.equal(new URL(page.url()).hash, '#/devices/demo-boiler');
  await page.locator('#live-status', { hasText: 'live' }).waitFor();
  const gauge = page.locator('[data-gauge="temperature"] .gauge-value');
  const canvas = page.locator('[data-chart="temperature"] canvas').first();
  await canvas.waitFor();
  await page.evaluate(() => { window.__sameDocument = true; });
  const gauge0 = await gauge.textContent();
  const chart0 = await canvas.evaluate((c) => c.toDataURL());
  await eventually(async () => (await gauge.textContent()) !== gauge0, `the gauge to change from ${gauge0}`);
  await eventually(async () => (await canvas.evaluate((c) => c.toDataURL())) !== chart0, 'the chart to redraw');
  assert.match(await gauge.textContent(), /^\d+(\.\d+)?$/);
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  await screenshot(page, 'demo-device');

  // Back on the dashboard before the breach: the alert arrives by itself.
  await page.getByRole('link', { name: 'Dashboard', exact: true }).click();
  await page.locator('[data-page="dashboard"]').waitFor();
  await page.locator('#live-status', { hasText: 'live' }).waitFor();
  await page.evaluate(() => { window.__sameDocument = true; });
  assert.equal(await page.locator('[data-alert-id]').count(), 0, `no alert yet at ${since()} (the breach opens one at about 25 s)`);
  const item = page.locator('[data-alert-id]').first();
  await item.waitFor({ timeout: 40000 });
  assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  assert.match(await item.textContent(), /demo-boiler/);
  assert.match(await item.locator('[data-status]').textContent(), /open/);
  await page.locator('[data-device="demo-boiler"].alerting').waitFor();
  assert.equal(await page.locator('[data-count="open-alerts"]').textContent(), '1');
  await screenshot(page, 'demo-dashboard-alert');

  // Acknowledged from its page, before the breach ends (about 39 s).
  const id = await item.getAttribute('data-alert-id');
  await item.getByRole('link', { name: `#${id}`, exact: true }).click();
  const detail = page.locator(`[data-page="alert"] [data-alert-id="${id}"]`);
  await detail.waitFor();
  await detail.getByRole('button', { name: 'Acknowledge' }).click();
  await eventually(async () => (await detail.locator('[data-status]').textContent()) === 'acknowledged',
    `the alert page to say acknowledged (${since()})`);
  const rest = await d.login(username, password);
  const stored = await rest.call('GET', `/api/v1/alerts/${id}`);
  assert.equal(stored.status, 'acknowledged', `stored status ${since()}`);
  assert.equal(stored.acknowledged_by, 'demo');
  await screenshot(page, 'demo-alert-acknowledged');
  assert.deepEqual(b.problems, []);
});

// What a tenant user cannot reach: operator pages, and another tenant's
// device by its URL; and a device name that is an XSS payload is shown as
// text (the page never interprets it).

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon, browser, uiLogin, screenshot, USER_PASSWORD } from './harness.mjs';

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

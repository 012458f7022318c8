// Management through the pages: create a threshold rule and a webhook
// integration, send a test delivery to a real HTTP receiver on loopback and
// see its outcome; an invalid field is reported next to it. An operator's
// visit to the audit page is itself in the audit log.

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Daemon, browser, uiLogin, screenshot, eventually, ADMIN_PASSWORD, USER_PASSWORD } from './harness.mjs';

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
  assert.deepEqual(b.problems, []);
});

test('an operator opening the audit page is in the audit log', async () => {
  const page = await b.newPage();
  await uiLogin(page, d.base, 'admin', ADMIN_PASSWORD);
  await page.goto(`${d.base}/#/operator/audit`);
  await page.locator('[data-audit-id]').first().waitFor();
  await screenshot(page, 'operator-audit');
  const op = await d.login('admin', ADMIN_PASSWORD);
  const audit = await op.call('GET', '/api/v1/operator/audit');
  assert.ok(audit.items.some((e) => e.actor === 'user:admin' && /audit/.test(JSON.stringify(e))),
    JSON.stringify(audit.items.slice(0, 3)));
});

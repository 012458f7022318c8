// Login and logout through the page; a wrong password is shown as a message
// (never raw JSON); a reload keeps the session; an expired session leads
// back to the login page with a message; the strict CSP holds (no console
// errors, no violations).

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { Daemon, browser, uiLogin, screenshot, USER_PASSWORD } from './harness.mjs';

let d, b;
before(async () => {
  d = await Daemon.start();
  await d.tenant('acme');
  b = await browser();
});
after(async () => {
  await b?.close();
  await d?.stop();
});

test('login, reload, logout; wrong password and expired session show messages', async () => {
  const page = await b.newPage();
  await page.goto(`${d.base}/`);
  await page.waitForFunction(() => location.hash.startsWith('#/login'));
  await screenshot(page, 'login');

  await page.getByLabel('User name').fill('acme-admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Log in' }).click();
  const error = page.getByRole('alert');
  await error.waitFor();
  const text = await error.textContent();
  assert.ok(text.length > 0 && !text.trim().startsWith('{'), `a message, not JSON: ${text}`);

  await uiLogin(page, d.base, 'acme-admin', USER_PASSWORD);
  await page.locator('[data-page="dashboard"]').waitFor();
  await screenshot(page, 'dashboard');
  await page.reload();
  await page.locator('[data-page="dashboard"]').waitFor();
  assert.ok(!page.url().includes('#/login'), 'a reload keeps the session');

  // The session ends behind the page's back: the next call leads to login.
  await page.context().clearCookies();
  await page.evaluate(() => { location.hash = '#/devices'; });
  await page.waitForFunction(() => location.hash.startsWith('#/login'));
  const body = await page.locator('body').textContent();
  assert.match(body, /session/i, 'says the session ended');
  assert.doesNotMatch(body, /"error"/, 'no raw JSON');

  await uiLogin(page, d.base, 'acme-admin', USER_PASSWORD);
  await page.getByRole('button', { name: /log out/i }).click();
  await page.waitForFunction(() => location.hash.startsWith('#/login'));
  assert.deepEqual(b.problems, []);
});

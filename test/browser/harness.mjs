// What the browser tests share: the daemon (started per test file on free
// ports, with a fresh data dir), REST calls to set up tenants, users and
// devices, MQTT publishes (mosquitto_pub), an upstream Mosquitto for bridge
// tests, and Debian's Chromium driven by playwright-core, with every console
// error and CSP violation collected.
//
// Environment: PULSEGATE_BIN (the daemon; meson sets it), MESON_BUILD_ROOT
// (screenshots go to <it>/meson-logs/screenshots/), CHROMIUM (default
// /usr/bin/chromium).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, mkdirSync, rmSync, readFileSync, chmodSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

export const ADMIN_PASSWORD = 'admin-browser-pw-1';
export const USER_PASSWORD = 'user-browser-pw-1';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Polls `f` until it returns a truthy value (returned) or `ms` pass (throws `what`).
export async function eventually(f, what, ms = 15000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

export class Daemon {
  // `extraEnv` is added to this process's environment (so PULSEGATE_* set
  // by hand, e.g. PULSEGATE_HTTP_UI_DIR, reach the daemon too); `args` go
  // after `serve` (e.g. ['--demo']); `toml` (e.g. a [[bridge]] section, which
  // no variable can express) is written to a config file passed as
  // `serve --config` (the PULSEGATE_* variables still apply after it).
  static async start(extraEnv = {}, { args = [], toml = '' } = {}) {
    const bin = process.env.PULSEGATE_BIN;
    if (!bin) throw new Error('PULSEGATE_BIN is not set (meson test sets it)');
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-browser-'));
    const pw = path.join(dir, 'admin-password');
    writeFileSync(pw, ADMIN_PASSWORD + '\n');
    execFileSync(bin, ['init', '--data-dir', path.join(dir, 'data'), '--admin-password-file', pw], { stdio: 'ignore' });
    const log = path.join(dir, 'daemon.log');
    const env = {
      ...process.env,
      PULSEGATE_STORAGE_DATA_DIR: path.join(dir, 'data'),
      PULSEGATE_HTTP_LISTEN: '127.0.0.1:0',
      PULSEGATE_MQTT_LISTEN: '127.0.0.1:0',
      PULSEGATE_RULES_HEARTBEAT_GRACE_S: '0',
      ...extraEnv,
    };
    for (const k of Object.keys(env)) if (k === 'PULSEGATE_BIN' || k === 'PULSEGATE_SOURCE_ROOT') delete env[k];
    if (toml) {
      writeFileSync(path.join(dir, 'pulsegate.toml'), toml);
      args = ['--config', path.join(dir, 'pulsegate.toml'), ...args];
    }
    const child = spawn(bin, ['serve', ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const d = new Daemon(dir, child, log);
    let text = '';
    const collect = (chunk) => { text += chunk; d.logText = text; };
    child.stdout.on('data', collect);
    child.stderr.on('data', collect);
    try {
      await eventually(() => /proto=http addr=\S+/.test(text) || child.exitCode !== null, 'the daemon to listen');
    } catch (e) {
      child.kill('SIGKILL');
      throw new Error(`${e.message}; its log:\n${text}`);
    }
    if (child.exitCode !== null) throw new Error(`the daemon exited:\n${text}`);
    d.http = text.match(/proto=http addr=(\S+)/)[1];
    d.mqttPort = Number(text.match(/proto=mqtt addr=\S+:(\d+)/)[1]);
    d.base = `http://${d.http}`;
    return d;
  }

  constructor(dir, child, log) {
    this.dir = dir;
    this.child = child;
    this.log = log;
    this.logText = '';
  }

  async stop() {
    if (this.child.exitCode === null) {
      this.child.kill('SIGTERM');
      await eventually(() => this.child.exitCode !== null, 'the daemon to stop', 10000).catch(() => this.child.kill('SIGKILL'));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  // A REST session: login(user, password) then call(method, path, body).
  async login(username, password) {
    const res = await fetch(`${this.base}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ username, password }),
    });
    if (res.status !== 200) throw new Error(`login ${username}: ${res.status} ${await res.text()}`);
    const body = await res.json();
    const cookie = res.headers.get('set-cookie').split(';')[0];
    const base = this.base;
    return {
      cookie,
      async call(method, p, data) {
        const r = await fetch(`${base}${p}`, {
          method,
          headers: { Cookie: cookie, 'X-CSRF-Token': body.csrf_token, 'Content-Type': 'application/json' },
          body: data === undefined ? undefined : JSON.stringify(data),
        });
        const t = await r.text();
        const json = t ? JSON.parse(t) : null;
        if (r.status >= 300) throw new Error(`${method} ${p}: ${r.status} ${t}`);
        return json;
      },
    };
  }

  // A tenant with a tenant_admin `<id>-admin`; devices: [{id, name, labels}].
  // Returns {admin: session, secrets: {device: secret}}.
  async tenant(id, devices = []) {
    const op = await this.login('admin', ADMIN_PASSWORD);
    await op.call('POST', '/api/v1/operator/tenants', { id, name: id.toUpperCase() });
    await op.call('POST', '/api/v1/operator/users', {
      username: `${id}-admin`, password: USER_PASSWORD, role: 'tenant_admin', tenant: id,
    });
    const admin = await this.login(`${id}-admin`, USER_PASSWORD);
    const secrets = {};
    for (const dev of devices) {
      const created = await admin.call('POST', '/api/v1/devices', dev);
      secrets[dev.id] = created.secret;
    }
    return { admin, secrets, user: `${id}-admin` };
  }

  // One QoS 1 publish as a device of `tenant` (README: MQTT).
  publish(tenant, device, secret, payload, kind = 'telemetry') {
    execFileSync('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(this.mqttPort), '-i', `${device}-pub`,
      '-u', `${tenant}/${device}`, '-P', secret, '-q', '1', '-t', `d/${device}/${kind}`, '-m', payload]);
  }
}

// A free TCP port on loopback (free when asked: bind it soon).
export async function freePort() {
  const srv = net.createServer();
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address();
  await new Promise((r) => srv.close(r));
  return port;
}

// Debian's Mosquitto on a free loopback port, anonymous, no persistence: an
// upstream broker for [[bridge]] tests. stop() ends it (SIGTERM) and removes
// its directory.
export class Mosquitto {
  static async start() {
    const dir = mkdtempSync(path.join(tmpdir(), 'pg-browser-mosquitto-'));
    chmodSync(dir, 0o777); // started as root, Mosquitto runs as user mosquitto
    const port = await freePort();
    const conf = path.join(dir, 'mosquitto.conf');
    writeFileSync(conf, `listener ${port} 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n`);
    const child = spawn('/usr/sbin/mosquitto', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    const m = new Mosquitto(dir, child, port);
    child.stdout.on('data', (c) => { m.logText += c; });
    child.stderr.on('data', (c) => { m.logText += c; });
    try {
      await eventually(() => / running/.test(m.logText) || child.exitCode !== null, 'mosquitto to start');
    } catch (e) {
      child.kill('SIGKILL');
      throw new Error(`${e.message}; its log:\n${m.logText}`);
    }
    if (child.exitCode !== null) throw new Error(`mosquitto exited:\n${m.logText}`);
    return m;
  }

  constructor(dir, child, port) {
    this.dir = dir;
    this.child = child;
    this.port = port;
    this.logText = '';
  }

  async stop() {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGTERM');
      await eventually(() => this.child.exitCode !== null || this.child.signalCode !== null, 'mosquitto to stop', 10000)
        .catch(() => this.child.kill('SIGKILL'));
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

// Chromium with a fresh profile; `problems` collects console errors, page
// errors and CSP violations of every page opened through newPage().
export async function browser() {
  const b = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const problems = [];
  return {
    problems,
    async newPage() {
      const context = await b.newContext({ viewport: { width: 1280, height: 900 } });
      const page = await context.newPage();
      page.on('console', (m) => {
        // 401/404 answers the UI handles show up as failed-resource lines.
        if (m.type() === 'error' && !/status of 40[0134]/.test(m.text())) problems.push(`console: ${m.text()}`);
      });
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      return page;
    },
    close: () => b.close(),
  };
}

// Logs in through the login page.
export async function uiLogin(page, base, username, password) {
  await page.goto(`${base}/#/login`);
  await page.getByLabel('User name').fill(username);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.waitForFunction(() => !location.hash.startsWith('#/login'));
}

export async function screenshot(page, name) {
  const root = process.env.MESON_BUILD_ROOT || process.cwd();
  const dir = path.join(root, 'meson-logs', 'screenshots');
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: path.join(dir, `${name}.png`), fullPage: true });
}

export function readLog(d) {
  try { return readFileSync(d.log, 'utf8'); } catch { return d.logText; }
}

// The live feed: one shared WebSocket to /api/v1/ws (webui/live_feed.hpp)
// for every page. Reconnects with backoff, subscribes again after a
// reconnect, and tells subscribers to reload over REST on a `resync` (and
// after a reconnect: messages may have been missed while offline).
//
//   import { live } from '/assets/live.js';
//   const off = live.subscribe({ alerts: true, onAlert(ev) {...}, onResync() {...} });
//   const off2 = live.subscribe({ device: 's1', onTelemetry(msg) {...} });
//   ctx.onLeave(off);
//   live.onState((state) => ...);   // 'live' | 'offline'; returns an unsubscribe

const subs = new Set();
const stateListeners = new Set();
let ws = null;
let state = 'offline';
let backoff = 1000;
let timer = null;
let wanted = false;
let everOpened = false;

function setState(s) {
  if (state === s) return;
  state = s;
  for (const fn of stateListeners) { try { fn(s); } catch (err) { console.error(err); } }
}

function send(obj) {
  if (ws && ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(obj));
}

function counts() {
  let alerts = 0;
  const devices = new Map();
  for (const s of subs) {
    if (s.alerts) alerts++;
    if (s.device) devices.set(s.device, (devices.get(s.device) ?? 0) + 1);
  }
  return { alerts, devices };
}

function subscribeAll() {
  const { alerts, devices } = counts();
  if (alerts > 0) send({ op: 'subscribe', alerts: true });
  for (const d of devices.keys()) send({ op: 'subscribe', device: d });
}

function dispatch(fnName, arg) {
  for (const s of [...subs]) {
    const fn = s[fnName];
    if (typeof fn === 'function') { try { fn(arg); } catch (err) { console.error(err); } }
  }
}

function connect() {
  if (ws || !wanted) return;
  const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/api/v1/ws`;
  let sock;
  try { sock = new WebSocket(url); } catch { scheduleReconnect(); return; }
  ws = sock;
  sock.addEventListener('open', () => {
    backoff = 1000;
    setState('live');
    subscribeAll();
    if (everOpened) dispatch('onResync', { reason: 'reconnected' });
    everOpened = true;
  });
  sock.addEventListener('message', (e) => {
    let msg;
    try { msg = JSON.parse(e.data); } catch { return; }
    if (msg.type === 'alert') dispatch('onAlert', msg.event);
    else if (msg.type === 'telemetry') {
      for (const s of [...subs]) {
        if (s.device === msg.device && typeof s.onTelemetry === 'function') {
          try { s.onTelemetry(msg); } catch (err) { console.error(err); }
        }
      }
    } else if (msg.type === 'resync') dispatch('onResync', msg);
  });
  sock.addEventListener('close', () => {
    if (ws === sock) ws = null;
    setState('offline');
    scheduleReconnect();
  });
  sock.addEventListener('error', () => { /* close follows */ });
}

function scheduleReconnect() {
  if (!wanted || timer) return;
  const delay = backoff + Math.floor(Math.random() * 300);
  backoff = Math.min(backoff * 2, 30000);
  timer = setTimeout(() => { timer = null; connect(); }, delay);
}

export const live = {
  get state() { return state; },
  // Opens the feed (idempotent); pages call subscribe(), which starts it.
  start() { wanted = true; connect(); },
  // Closes the feed (logout).
  stop() {
    wanted = false;
    if (timer) { clearTimeout(timer); timer = null; }
    if (ws) { const s = ws; ws = null; s.close(); }
    setState('offline');
  },
  subscribe(sub) {
    const before = counts();
    subs.add(sub);
    live.start();
    if (sub.alerts && before.alerts === 0) send({ op: 'subscribe', alerts: true });
    if (sub.device && !before.devices.has(sub.device)) send({ op: 'subscribe', device: sub.device });
    return () => {
      if (!subs.delete(sub)) return;
      const after = counts();
      if (sub.alerts && after.alerts === 0) send({ op: 'unsubscribe', alerts: true });
      if (sub.device && !after.devices.has(sub.device)) send({ op: 'unsubscribe', device: sub.device });
    };
  },
  onState(fn) { stateListeners.add(fn); return () => stateListeners.delete(fn); },
};

// The REST API from the browser: one fetch wrapper, the session, and the
// message a page shows after a redirect.
//
//   import { api, ApiError } from '/assets/api.js';
//   const devices = await api.get('/api/v1/devices?limit=50');
//   await api.post(`/api/v1/alerts/${encodeURIComponent(id)}/ack`);
//
// - Bodies go out as JSON; answers come back parsed (null for 204).
// - Every request but GET and HEAD carries X-CSRF-Token, the token login
//   (or GET /api/v1/auth/me) returned: the session cookie alone is not
//   enough to change anything (webui/auth.hpp).
// - A failed request throws an ApiError with the server's
//   {"error": {"code", "message", "field"}} (or a made-up one when the
//   answer is not that shape: a proxy's page, a network failure), so a page
//   shows err.message and marks err.field, never raw JSON.
// - 401 means the session is gone (expired, logged out elsewhere, user
//   disabled): the session is cleared and the browser goes to #/login with
//   a "session expired" message; the call still throws, so the page stops.
//   Pass {redirectOn401: false} where a 401 is an answer, not an expiry
//   (the login form, the first /auth/me).

export class ApiError extends Error {
  constructor(status, code, message, field = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status; // HTTP status; 0 when the server was not reached
    this.code = code;     // "invalid_argument", "not_found", ... (webui/api_error.hpp)
    this.field = field;   // the input field at fault (400), or null
  }
}

// The logged-in user: {username, role, tenant (null for operators)}, or
// null. Read it; change it only through setSession/clearSession.
export const session = { user: null, csrfToken: null };

export function setSession(loginBody) {
  session.user = loginBody.user;
  session.csrfToken = loginBody.csrf_token ?? null;
}

export function clearSession() {
  session.user = null;
  session.csrfToken = null;
}

// One message for the next page rendered (e.g. "session expired" on the
// login page). takeFlash() returns it once.
let flash = null;
export function setFlash(text, kind = 'info') { flash = text ? { text, kind } : null; }
export function takeFlash() { const f = flash; flash = null; return f; }

// Where to go back to after the next login (the route a 401 interrupted).
let returnTo = null;
export function setReturnTo(route) { returnTo = route && !route.startsWith('/login') ? route : null; }
export function takeReturnTo() { const r = returnTo; returnTo = null; return r; }

function sessionExpired() {
  const hadUser = session.user !== null;
  clearSession();
  if (hadUser) setFlash('Your session has expired or was ended. Please log in again.', 'warning');
  setReturnTo(location.hash.replace(/^#/, '') || '/');
  location.hash = '#/login';
}

async function request(method, path, body, { redirectOn401 = true } = {}) {
  const headers = { Accept: 'application/json' };
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (method !== 'GET' && method !== 'HEAD' && session.csrfToken) headers['X-CSRF-Token'] = session.csrfToken;

  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, 'network', 'Cannot reach the pulsegate server. Check the connection and try again.');
  }
  if (res.status === 204) return null;

  let data = null;
  const text = await res.text();
  if (text && (res.headers.get('Content-Type') ?? '').startsWith('application/json')) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (res.ok) return data;

  const err = data && typeof data.error === 'object' && data.error !== null ? data.error : {};
  const error = new ApiError(
    res.status,
    typeof err.code === 'string' ? err.code : `http_${res.status}`,
    typeof err.message === 'string' ? err.message : `The server answered ${res.status} ${res.statusText}.`.trim(),
    typeof err.field === 'string' ? err.field : null);
  if (res.status === 401 && redirectOn401) sessionExpired();
  throw error;
}

export const api = {
  request,
  get: (path, opts) => request('GET', path, undefined, opts),
  post: (path, body, opts) => request('POST', path, body, opts),
  put: (path, body, opts) => request('PUT', path, body, opts),
  patch: (path, body, opts) => request('PATCH', path, body, opts),
  del: (path, opts) => request('DELETE', path, undefined, opts),
};

// #/login: the login form. POST /api/v1/auth/login {"username", "password"}
// answers {"user", "csrf_token"} and sets the session cookie; then the
// browser goes back where it was sent from (or to the dashboard).

import { h } from '/assets/dom.js';
import { api, ApiError, setSession, takeReturnTo } from '/assets/api.js';

export const path = '/login';
export const title = 'Log in';
export const requiresLogin = false;

export function render() {
  const username = h('input', { id: 'login-username', name: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const error = h('p', { class: 'form-error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit' }, 'Log in');

  const showError = (message, field) => {
    error.hidden = false;
    error.textContent = message;
    for (const input of [username, password]) input.setAttribute('aria-invalid', String(input.name === field));
  };

  async function onsubmit(event) {
    event.preventDefault();
    submit.disabled = true;
    error.hidden = true;
    try {
      const body = await api.post('/api/v1/auth/login',
        { username: username.value.trim(), password: password.value },
        { redirectOn401: false });
      setSession(body);
      location.hash = `#${takeReturnTo() ?? '/'}`;
    } catch (err) {
      password.value = '';
      showError(err instanceof ApiError ? err.message : 'Logging in failed; try again.', err.field ?? null);
      (err.field === 'username' ? username : password).focus();
    } finally {
      submit.disabled = false;
    }
  }

  return h('section', { class: 'card login' },
    h('h1', null, 'pulsegate'),
    h('p', { class: 'muted' }, 'Log in to watch your devices and alerts.'),
    h('form', { onsubmit },
      h('label', { for: 'login-username' }, 'User name'), username,
      h('label', { for: 'login-password' }, 'Password'), password,
      error,
      submit));
}

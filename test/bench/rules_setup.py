#!/usr/bin/env python3
"""Creates the rules of the rules scenarios in a running pulsegate, through
the REST API, for test/bench/run.sh.

    rules_setup.py --http 127.0.0.1:PORT --admin-password-file F
                   [--tenant default] [--metrics 100] [--per-metric 10] [--probe]
                   [--webhook URL]

The data dir was made by `pulsegate init --admin-password-file F`, so the
only user is the operator_admin `admin`. As admin: create the tenant
anonymous MQTT clients live in ([auth] anonymous_tenant, "default") and a
tenant_admin of it; as that user: POST the rules. Every write is
acknowledged only once the engine has the rule (rules_changed runs before
the answer), so the rules are live when this exits.

Threshold rules (none of them ever fires with the load generator's values,
100.000..999.999): for each metric m000..m{metrics-1}, `per-metric` rules
alternating `> 1000 + j` and `< -1 - j`, so that a reading of one metric is
evaluated against `per-metric` rules. --probe adds `probe > 999999`, which
the latency scenario's probe device breaches with 1000000 + sequence and
clears with 0.

--webhook URL (scenario delivery) adds a webhook integration posting to URL
and a route sending it the tenant's `alert.opened` events only (so the
clearing readings' alert.closed events are not delivered). The daemon must
allow the target (`[delivery] allow_private_targets` for loopback).

Prints one JSON object: rules created and the seconds it took. Exit status
1 with the API's answer on the first failure.
"""
import argparse
import http.client
import json
import sys
import time


class api:
    def __init__(self, hostport):
        host, port = hostport.rsplit(":", 1)
        self.conn = http.client.HTTPConnection(host, int(port), timeout=30)
        self.cookie = None
        self.csrf = None

    def call(self, method, path, body=None, ok=(200, 201)):
        headers = {"Content-Type": "application/json"}
        if self.cookie:
            headers["Cookie"] = self.cookie
        if self.csrf:
            headers["X-CSRF-Token"] = self.csrf
        data = None if body is None else json.dumps(body)
        self.conn.request(method, path, body=data, headers=headers)
        res = self.conn.getresponse()
        text = res.read().decode("utf-8", "replace")
        if res.status not in ok:
            sys.exit(f"rules_setup: {method} {path} answered {res.status}: {text}")
        cookie = res.getheader("Set-Cookie")
        if cookie:
            self.cookie = cookie.split(";", 1)[0]
        return res.status, (json.loads(text) if text else None)

    def login(self, username, password):
        self.cookie = self.csrf = None
        _, body = self.call("POST", "/api/v1/auth/login", {"username": username, "password": password})
        self.csrf = body["csrf_token"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--http", required=True, help="pulsegate's [http] listen address, host:port")
    ap.add_argument("--admin-password-file", required=True)
    ap.add_argument("--tenant", default="default")
    ap.add_argument("--metrics", type=int, default=100)
    ap.add_argument("--per-metric", type=int, default=10)
    ap.add_argument("--probe", action="store_true")
    ap.add_argument("--webhook", help="URL of a webhook receiver: integration + route of alert.opened")
    a = ap.parse_args()

    with open(a.admin_password_file) as f:
        admin_password = f.readline().strip()
    t0 = time.monotonic()
    c = api(a.http)
    deadline = time.monotonic() + 10
    while True:  # the HTTP listener comes up right after the MQTT one
        try:
            c.call("GET", "/healthz")
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            c.conn.close()
            time.sleep(0.1)
    c.login("admin", admin_password)
    c.call("POST", "/api/v1/operator/tenants", {"id": a.tenant, "name": "bench"}, ok=(201, 409))
    user, password = "bench-admin", "bench-password-1"
    c.call("POST", "/api/v1/operator/users",
           {"username": user, "password": password, "role": "tenant_admin", "tenant": a.tenant}, ok=(201, 409))
    c.login(user, password)
    created = 0
    for m in range(a.metrics):
        for j in range(a.per_metric):
            above = j % 2 == 0
            rule = {"name": f"bench-m{m:03d}-{j}", "kind": "threshold", "metric": f"m{m:03d}",
                    "op": ">" if above else "<", "value": 1000 + j if above else -1 - j, "severity": "warning"}
            c.call("POST", "/api/v1/rules", rule, ok=(201,))
            created += 1
    if a.probe:
        c.call("POST", "/api/v1/rules", {"name": "bench-probe", "kind": "threshold", "metric": "probe", "op": ">",
                                         "value": 999999, "severity": "critical"}, ok=(201,))
        created += 1
    out = {"rules": created}
    if a.webhook:
        _, integ = c.call("POST", "/api/v1/integrations",
                          {"name": "bench-hook", "type": "webhook", "config": {"url": a.webhook}}, ok=(201,))
        _, route = c.call("POST", "/api/v1/routes", {"name": "bench-hook-opened", "integrations": [integ["id"]],
                                                     "match": {"events": ["alert.opened"]}}, ok=(201,))
        out.update(integration=integ["id"], route=route["id"])
    out["setup_s"] = round(time.monotonic() - t0, 3)
    print(json.dumps(out))


if __name__ == "__main__":
    main()

// The schema, as a history. Conventions:
//   - STRICT tables: a value of the wrong type is an error, not coerced.
//   - times are INTEGER epoch milliseconds (UTC), like the telemetry store.
//   - tenant-scoped rows carry `tenant` and are deleted with their tenant;
//     history (alerts, audit log, rejected events) keeps names, not foreign
//     keys, to what it refers to, so deleting a device or rule keeps it.
//   - JSON columns are TEXT checked with json_valid.
//   - ids: tenants and devices have the user-chosen id of DESIGN.md
//     ([a-z0-9][a-z0-9_-]{0,62}); everything else an INTEGER rowid.
#include "storage/state/migrations.hpp"

#include <array>

namespace pulsegate::storage::state::detail {

namespace {

constexpr const char* schema_v1 = R"sql(
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY CONSTRAINT tenant_id_syntax CHECK (length(id) BETWEEN 1 AND 63 AND id GLOB '[a-z0-9]*'
                                        AND NOT id GLOB '*[^a-z0-9_-]*'),
    name        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    disabled    INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1))
) STRICT;

-- Login names are unique across the instance: login takes no tenant.
-- Operators have no tenant; tenant users have one.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    tenant         TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    name           TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CONSTRAINT user_role
                   CHECK (role IN ('operator_admin', 'operator', 'tenant_admin', 'tenant_viewer')),
    password_hash  TEXT NOT NULL,            -- libsodium crypto_pwhash_str (argon2id)
    created_at     INTEGER NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    CONSTRAINT operators_have_no_tenant CHECK ((tenant IS NULL) = (role IN ('operator_admin', 'operator')))
) STRICT;
CREATE INDEX users_tenant ON users(tenant);

-- Web UI sessions; the cookie value itself is never stored, only its hash.
CREATE TABLE web_sessions (
    id_hash       BLOB PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    csrf_token    TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    last_seen_at  INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL
) STRICT;
CREATE INDEX web_sessions_user ON web_sessions(user_id);
CREATE INDEX web_sessions_expires ON web_sessions(expires_at);

-- API tokens (REST Bearer, MQTT {tenant}/api). tenant NULL: operator token.
CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    tenant        TEXT REFERENCES tenants(id) ON DELETE CASCADE,
    name          TEXT NOT NULL,
    token_hash    BLOB NOT NULL UNIQUE,
    scopes        TEXT NOT NULL DEFAULT '[]' CONSTRAINT scopes_is_json CHECK (json_valid(scopes)),
    created_by    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    expires_at    INTEGER
) STRICT;
CREATE INDEX api_tokens_tenant ON api_tokens(tenant);

CREATE TABLE devices (
    tenant       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    id           TEXT NOT NULL CONSTRAINT device_id_syntax CHECK (length(id) BETWEEN 1 AND 63 AND id GLOB '[a-z0-9]*'
                                      AND NOT id GLOB '*[^a-z0-9_-]*'),
    name         TEXT NOT NULL DEFAULT '',
    secret_hash  TEXT NOT NULL,              -- format chosen by the auth layer
    labels       TEXT NOT NULL DEFAULT '{}' CONSTRAINT labels_is_json CHECK (json_valid(labels)),
    created_at   INTEGER NOT NULL,
    disabled     INTEGER NOT NULL DEFAULT 0 CHECK (disabled IN (0, 1)),
    PRIMARY KEY (tenant, id)
) STRICT, WITHOUT ROWID;

CREATE TABLE rules (
    id           INTEGER PRIMARY KEY,
    tenant       TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name         TEXT NOT NULL,
    kind         TEXT NOT NULL CHECK (kind IN ('threshold', 'heartbeat')),
    metric       TEXT,
    op           TEXT CHECK (op IN ('>', '<', '>=', '<=', '==', '!=')),
    value        REAL,
    for_s        INTEGER NOT NULL DEFAULT 0,
    clear_value  REAL,
    interval_s   INTEGER,
    missed       INTEGER,
    severity     TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning', 'info')),
    scope        TEXT NOT NULL DEFAULT '{}' CONSTRAINT scope_is_json CHECK (json_valid(scope)),
    enabled      INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) STRICT;
CREATE INDEX rules_tenant ON rules(tenant);

-- config holds the non-secret fields; secret fields (webhook secret, SMTP
-- password, SNMP keys, MQTT password) are one JSON object encrypted at rest
-- (nonce || ciphertext) with the key from the data dir or the environment.
CREATE TABLE integrations (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL CHECK (type IN ('webhook', 'snmp', 'email', 'mqtt')),
    config      TEXT NOT NULL DEFAULT '{}' CONSTRAINT config_is_json CHECK (json_valid(config)),
    secrets     BLOB,
    enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (tenant, name)
) STRICT;

CREATE TABLE routes (
    id                INTEGER PRIMARY KEY,
    tenant            TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    name              TEXT NOT NULL,
    match             TEXT NOT NULL DEFAULT '{}' CONSTRAINT match_is_json CHECK (json_valid(match)),
    repeat_s          INTEGER NOT NULL DEFAULT 0,
    escalate_after_s  INTEGER,               -- escalation route: unacknowledged this long
    enabled           INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
    created_at        INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
) STRICT;
CREATE INDEX routes_tenant ON routes(tenant);

CREATE TABLE route_integrations (
    route        INTEGER NOT NULL REFERENCES routes(id) ON DELETE CASCADE,
    integration  INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    PRIMARY KEY (route, integration)
) STRICT, WITHOUT ROWID;
CREATE INDEX route_integrations_integration ON route_integrations(integration);

CREATE TABLE silences (
    id          INTEGER PRIMARY KEY,
    tenant      TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    matchers    TEXT NOT NULL DEFAULT '{}' CONSTRAINT matchers_is_json CHECK (json_valid(matchers)),
    comment     TEXT NOT NULL DEFAULT '',
    created_by  TEXT NOT NULL,
    starts_at   INTEGER NOT NULL,
    ends_at     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    CHECK (ends_at > starts_at)
) STRICT;
CREATE INDEX silences_tenant_ends ON silences(tenant, ends_at);

-- At most one non-closed alert per (tenant, device, rule): the partial
-- unique index enforces it; repeats update count/value/last_at.
CREATE TABLE alerts (
    id               INTEGER PRIMARY KEY,
    tenant           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    device           TEXT NOT NULL,
    rule             INTEGER NOT NULL,
    rule_name        TEXT NOT NULL DEFAULT '',
    kind             TEXT NOT NULL CHECK (kind IN ('THRESHOLD', 'NO_HEARTBEAT')),
    severity         TEXT NOT NULL CHECK (severity IN ('critical', 'major', 'minor', 'warning', 'info')),
    state            TEXT NOT NULL CHECK (state IN ('open', 'acknowledged', 'closed')),
    metric           TEXT,
    value            REAL,
    threshold        REAL,
    message          TEXT NOT NULL DEFAULT '',
    count            INTEGER NOT NULL DEFAULT 1,
    opened_at        INTEGER NOT NULL,
    last_at          INTEGER NOT NULL,
    acknowledged_at  INTEGER,
    acknowledged_by  TEXT,
    escalated_at     INTEGER,
    closed_at        INTEGER,
    closed_by        TEXT                    -- NULL: closed automatically
) STRICT;
CREATE UNIQUE INDEX alerts_one_open ON alerts(tenant, device, rule) WHERE state <> 'closed';
CREATE INDEX alerts_tenant_state ON alerts(tenant, state, opened_at);
CREATE INDEX alerts_tenant_device ON alerts(tenant, device, opened_at);

-- The outbox: one job per (event, integration); event_key identifies the
-- event ("alert:42:opened") so the router can insert idempotently.
CREATE TABLE delivery_jobs (
    id               INTEGER PRIMARY KEY,
    tenant           TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,
    alert            INTEGER REFERENCES alerts(id) ON DELETE SET NULL,
    integration      INTEGER NOT NULL REFERENCES integrations(id) ON DELETE CASCADE,
    event            TEXT NOT NULL,          -- alert.opened, alert.acknowledged, ...
    event_key        TEXT NOT NULL,
    payload          TEXT NOT NULL CONSTRAINT payload_is_json CHECK (json_valid(payload)),
    state            TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    max_attempts     INTEGER NOT NULL,
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL,
    UNIQUE (event_key, integration)
) STRICT;
CREATE INDEX delivery_jobs_due ON delivery_jobs(next_attempt_at) WHERE state IN ('pending', 'in_flight');
CREATE INDEX delivery_jobs_alert ON delivery_jobs(alert);
CREATE INDEX delivery_jobs_tenant ON delivery_jobs(tenant, created_at);

CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    job         INTEGER NOT NULL REFERENCES delivery_jobs(id) ON DELETE CASCADE,
    attempt     INTEGER NOT NULL,
    started_at  INTEGER NOT NULL,
    latency_ms  INTEGER NOT NULL,
    outcome     TEXT NOT NULL CHECK (outcome IN ('delivered', 'retry', 'failed')),
    status      TEXT NOT NULL DEFAULT '',    -- HTTP status, SMTP reply code, ...
    error       TEXT,
    UNIQUE (job, attempt)
) STRICT;

-- Who did what. tenant is a plain name (history outlives tenants).
CREATE TABLE audit_log (
    id       INTEGER PRIMARY KEY,
    at       INTEGER NOT NULL,
    actor    TEXT NOT NULL,
    tenant   TEXT,
    action   TEXT NOT NULL,
    target   TEXT NOT NULL DEFAULT '',
    details  TEXT NOT NULL DEFAULT '{}' CONSTRAINT details_is_json CHECK (json_valid(details))
) STRICT;
CREATE INDEX audit_log_at ON audit_log(at);
CREATE INDEX audit_log_tenant ON audit_log(tenant, id);

-- Denied publishes / subscribes / connects, bounded (pruned by age and count).
CREATE TABLE rejected_events (
    id         INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    tenant     TEXT,
    principal  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    topic      TEXT NOT NULL DEFAULT '',
    reason     TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX rejected_events_at ON rejected_events(at);

CREATE TABLE settings (
    key         TEXT PRIMARY KEY,
    value       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
)sql";

// The operator views filter the audit log and rejected events by actor and
// tenant; login throttling and the users page show the last login.
constexpr const char* schema_v2 = R"sql(
ALTER TABLE users ADD COLUMN last_login_at INTEGER;
CREATE INDEX audit_log_actor ON audit_log(actor, id);
CREATE INDEX rejected_events_tenant ON rejected_events(tenant, id);
)sql";

// Identity: an API token (pgt_<public id>_<secret>) is found by the public
// id it carries, which also names it in the REST API; devices show when they
// were last seen; web sessions expire when idle as well as at an absolute
// time, and remember the address they were opened from. public_id is
// nullable only because ADD COLUMN cannot add NOT NULL without a default;
// every token row is written with one.
constexpr const char* schema_v3 = R"sql(
ALTER TABLE api_tokens ADD COLUMN public_id TEXT;
CREATE UNIQUE INDEX api_tokens_public_id ON api_tokens(public_id);
ALTER TABLE devices ADD COLUMN last_seen_at INTEGER;
ALTER TABLE web_sessions ADD COLUMN idle_expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE web_sessions ADD COLUMN remote_addr TEXT NOT NULL DEFAULT '';
)sql";

// Rules and alerts as the engine keeps them: a rule's description and
// escalation delay; an alert's latest value, escalation level and whether a
// silence muted it. Purging closed alerts goes by closed_at; a tenant's
// alert list pages by id. Alert ids are chosen by the engine from max_id():
// alert_id_high_water keeps the largest id ever deleted (purge, tenant
// removal), so an id is never reused, since delivery jobs name events by it
// ("alert:42:opened"). device_liveness keeps when each device last sent
// anything; no foreign key, as anonymous devices have no devices row.
constexpr const char* schema_v4 = R"sql(
ALTER TABLE rules ADD COLUMN description TEXT NOT NULL DEFAULT '';
ALTER TABLE rules ADD COLUMN escalate_after_s INTEGER;
ALTER TABLE alerts ADD COLUMN last_value REAL;
ALTER TABLE alerts ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
ALTER TABLE alerts ADD COLUMN silenced INTEGER NOT NULL DEFAULT 0 CHECK (silenced IN (0, 1));
CREATE INDEX alerts_closed_at ON alerts(closed_at) WHERE state = 'closed';
CREATE INDEX alerts_tenant_id ON alerts(tenant, id);

CREATE TABLE alert_id_high_water (
    one     INTEGER PRIMARY KEY CHECK (one = 1),
    max_id  INTEGER NOT NULL
) STRICT;
INSERT INTO alert_id_high_water (one, max_id) SELECT 1, coalesce(max(id), 0) FROM alerts;
CREATE TRIGGER alerts_keep_high_water AFTER DELETE ON alerts
BEGIN
    UPDATE alert_id_high_water SET max_id = old.id WHERE max_id < old.id;
END;

CREATE TABLE device_liveness (
    tenant           TEXT NOT NULL,
    device           TEXT NOT NULL,
    last_message_at  INTEGER NOT NULL,
    PRIMARY KEY (tenant, device)
) STRICT, WITHOUT ROWID;
)sql";

// Delivery: whether a route lets later routes match too (DESIGN.md: all
// matching routes apply unless one says stop); the delivery log lists a
// tenant's jobs newest first, optionally by integration or state.
constexpr const char* schema_v5 = R"sql(
ALTER TABLE routes ADD COLUMN continue_matching INTEGER NOT NULL DEFAULT 1 CHECK (continue_matching IN (0, 1));
CREATE INDEX delivery_jobs_tenant_id ON delivery_jobs(tenant, id);
CREATE INDEX delivery_jobs_integration ON delivery_jobs(integration, id);
)sql";

constexpr std::array all = {
    migration{1, "initial schema", schema_v1},
    migration{2, "users.last_login_at; audit log and rejected events indexes", schema_v2},
    migration{3, "api_tokens.public_id, devices.last_seen_at, web session idle expiry and address", schema_v3},
    migration{4, "rules and alerts fields of the engine, alert id high-water mark, device liveness", schema_v4},
    migration{5, "routes.continue_matching; delivery log indexes", schema_v5},
};

} // namespace

std::span<const migration> migrations() noexcept { return all; }

} // namespace pulsegate::storage::state::detail

-- Users of the management API and the audit trail. Portable SQL (SQLite
-- and PostgreSQL); times are Unix milliseconds.

-- Operators who log in. `password` is an argon2id PHC string, never the
-- password; `failed_logins` counts consecutive failures since the last
-- success and `locked_until` ends a lockout (0: not locked).
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    email TEXT NOT NULL,
    role TEXT NOT NULL,
    status TEXT NOT NULL,
    password TEXT NOT NULL,
    failed_logins BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Append-only: the API has no route that changes or deletes an entry; only
-- the retention sweep deletes entries older than `audit.retention_days`.
-- `id` sorts by time (zero-padded milliseconds, then random hex).
CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL,
    actor TEXT NOT NULL,
    role TEXT NOT NULL,
    credential TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status BIGINT NOT NULL,
    request_id TEXT NOT NULL,
    client TEXT NOT NULL,
    before_state TEXT,
    after_state TEXT,
    detail TEXT NOT NULL
);
CREATE INDEX audit_log_at ON audit_log (at);
CREATE INDEX audit_log_actor ON audit_log (actor);
CREATE INDEX audit_log_action ON audit_log (action);

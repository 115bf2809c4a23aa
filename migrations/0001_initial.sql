-- Bulwark's management store. Portable SQL: the same file runs on SQLite
-- and PostgreSQL. Times are Unix milliseconds; flags are 0/1.

-- Upstreams created through the API (file upstreams stay in the file).
-- `definition` is the upstream's table as JSON, written and read only
-- through src/store/secrets.rs.
CREATE TABLE upstreams (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Projects: upstream grants and tool allow/deny lists, as JSON. A
-- disabled project's keys are refused.
CREATE TABLE projects (
    name TEXT PRIMARY KEY,
    definition TEXT NOT NULL,
    enabled BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- API keys: the SHA-256 hash only, never the key.
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    hash TEXT NOT NULL UNIQUE,
    user_name TEXT NOT NULL,
    project TEXT NOT NULL,
    revoked BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_project ON api_keys (project);

-- Rug-pull pins: the approved definition hash of each upstream tool.
CREATE TABLE guardrail_pins (
    server TEXT NOT NULL,
    tool TEXT NOT NULL,
    pinned TEXT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (server, tool)
);

-- One-time facts, e.g. that the keys file was imported.
CREATE TABLE store_meta (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

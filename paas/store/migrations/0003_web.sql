-- The dashboard and JSON API: accounts, API tokens (only a hash of each), sessions, failed logins
-- (shared by every gunicorn worker, so throttling holds across them), and CPU/memory samples.
CREATE TABLE users (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    password_hash  TEXT NOT NULL,           -- argon2id, with its parameters and salt
    is_admin       INTEGER NOT NULL DEFAULT 0,
    created_at     TEXT NOT NULL
);

CREATE TABLE api_tokens (
    id            INTEGER PRIMARY KEY,
    user_id       INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash    TEXT NOT NULL UNIQUE,     -- sha256 hex; the token itself is shown once
    description   TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    last_used_at  TEXT
);

CREATE TABLE web_sessions (
    id_hash     TEXT PRIMARY KEY,           -- sha256 hex of the random id in the signed cookie
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at  REAL NOT NULL,              -- unix time
    seen_at     REAL NOT NULL
);

CREATE TABLE login_failures (
    id        INTEGER PRIMARY KEY,
    username  TEXT NOT NULL,
    ip        TEXT NOT NULL,
    at        REAL NOT NULL                 -- unix time
);

CREATE INDEX login_failures_key ON login_failures(username, ip, at);

CREATE TABLE process_stats (
    id            INTEGER PRIMARY KEY,
    app           TEXT NOT NULL,
    dyno          TEXT NOT NULL,
    container     TEXT NOT NULL,
    at            REAL NOT NULL,            -- unix time
    cpu_total     INTEGER NOT NULL,         -- cumulative CPU time of the container, ns
    system_total  INTEGER NOT NULL,         -- cumulative CPU time of the host, ns
    online_cpus   INTEGER NOT NULL,
    cpu_percent   REAL,                     -- since this container's previous sample (NULL at first)
    mem_bytes     INTEGER NOT NULL,
    mem_limit     INTEGER NOT NULL
);

CREATE INDEX process_stats_app ON process_stats(app, at);
CREATE INDEX process_stats_container ON process_stats(container, at);

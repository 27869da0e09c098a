-- The first schema. Later changes go in new numbered files; never edit a shipped one.
CREATE TABLE apps (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE ssh_keys (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL UNIQUE,
    fingerprint  TEXT NOT NULL UNIQUE,
    public_key   TEXT NOT NULL,
    is_admin     INTEGER NOT NULL DEFAULT 0,
    created_at   TEXT NOT NULL
);

CREATE TABLE config_vars (
    app_id  INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (app_id, key)
);

CREATE TABLE builds (
    id          INTEGER PRIMARY KEY,
    app_id      INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    commit_sha  TEXT NOT NULL,
    status      TEXT NOT NULL,              -- pending, succeeded, failed
    image       TEXT,
    processes   TEXT NOT NULL DEFAULT '{}', -- JSON: process type -> command
    buildpack   TEXT,
    output      TEXT NOT NULL DEFAULT '',
    user        TEXT,
    created_at  TEXT NOT NULL
);

CREATE TABLE releases (
    id           INTEGER PRIMARY KEY,
    app_id       INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    build_id     INTEGER REFERENCES builds(id),
    config       TEXT NOT NULL,             -- JSON snapshot of config vars
    formation    TEXT NOT NULL,             -- JSON snapshot: process type -> quantity
    description  TEXT NOT NULL,
    user         TEXT,
    status       TEXT NOT NULL,             -- pending, succeeded, failed
    created_at   TEXT NOT NULL,
    UNIQUE (app_id, version)
);

CREATE TABLE formation (
    app_id    INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    type      TEXT NOT NULL,
    quantity  INTEGER NOT NULL,
    PRIMARY KEY (app_id, type)
);

CREATE TABLE domains (
    id        INTEGER PRIMARY KEY,
    app_id    INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    hostname  TEXT NOT NULL UNIQUE
);

CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    app         TEXT,
    user        TEXT,
    action      TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '',
    created_at  TEXT NOT NULL
);

CREATE INDEX releases_app ON releases(app_id, version);
CREATE INDEX builds_app ON builds(app_id, id);

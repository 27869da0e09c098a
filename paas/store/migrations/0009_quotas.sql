-- Quotas: what an admin set for one user (a quota not set here is the server's default), and the
-- disk each app was last measured to use, by part (repo, cache, images, containers, logs, storage).
CREATE TABLE user_quotas (
    user_id  INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name     TEXT NOT NULL,                 -- apps, processes, memory, oneoffs, disk
    value    INTEGER NOT NULL,              -- a count, or bytes for memory and disk
    PRIMARY KEY (user_id, name)
);

CREATE TABLE app_disk_usage (
    app_id       INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    part         TEXT NOT NULL,
    bytes        INTEGER NOT NULL,
    measured_at  REAL NOT NULL,             -- unix time
    PRIMARY KEY (app_id, part)
);

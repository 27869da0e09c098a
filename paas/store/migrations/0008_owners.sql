-- Owners (issue 26): a name is not an identity, and an id is never given twice.
--
-- SQLite gives a new row the largest id + 1, so the id of the newest app (or user) came back after
-- it was removed: a new app would have inherited what is keyed by the old one's id. The highest id
-- each table ever had is kept here and a new row starts above it (paas/store `_fresh_id`).
CREATE TABLE retired_ids (
    tbl   TEXT PRIMARY KEY,
    last  INTEGER NOT NULL
);
INSERT INTO retired_ids (tbl, last) SELECT 'apps', COALESCE(MAX(id), 0) FROM apps;
INSERT INTO retired_ids (tbl, last) SELECT 'users', COALESCE(MAX(id), 0) FROM users;
CREATE TRIGGER apps_retire_id AFTER DELETE ON apps BEGIN
    UPDATE retired_ids SET last = MAX(last, OLD.id) WHERE tbl = 'apps';
END;
CREATE TRIGGER users_retire_id AFTER DELETE ON users BEGIN
    UPDATE retired_ids SET last = MAX(last, OLD.id) WHERE tbl = 'users';
END;

-- Events name the app they are about by id (no foreign key: a destroyed app's history stays for
-- admins). Past events go to the app of their name that existed when they were written.
ALTER TABLE events ADD COLUMN app_id INTEGER;
UPDATE events SET app_id = (
    SELECT apps.id FROM apps WHERE apps.name = events.app AND apps.created_at <= events.created_at
);
CREATE INDEX events_app_id ON events(app_id, id);

-- Storage folders (the storage plugin): the user who made one, or the app it was made for, may
-- mount it. A folder made before this has no row: only admins mount it (existing mounts stay).
CREATE TABLE storage_dirs (
    name        TEXT PRIMARY KEY,
    owner_id    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    app_id      INTEGER REFERENCES apps(id) ON DELETE SET NULL,
    created_at  TEXT NOT NULL
);

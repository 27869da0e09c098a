-- Per-app switches and settings: ps:stop/ps:start, checks, stop timeout, ...
ALTER TABLE apps ADD COLUMN stopped INTEGER NOT NULL DEFAULT 0;

CREATE TABLE app_settings (
    app_id  INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (app_id, key)
);

CREATE INDEX events_app ON events(app, id);

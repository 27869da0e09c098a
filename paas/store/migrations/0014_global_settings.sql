-- Server-wide values of Dokku's property model (`<namespace>:set --global <key> <value>`); an
-- app's own values live in app_settings. The key is `<namespace>.<property>`.
CREATE TABLE global_settings (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);

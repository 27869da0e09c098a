-- Server-wide values of Dokku's property model (`<namespace>:set --global <key> <value>`); an
-- app's own values live in app_settings. The key is `<namespace>.<property>`.
-- IF NOT EXISTS: databases made by the branch this came from hold it as migration 0010.
CREATE TABLE IF NOT EXISTS global_settings (
    key     TEXT PRIMARY KEY,
    value   TEXT NOT NULL
);

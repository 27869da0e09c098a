-- Review apps (issue 32): an app made from a branch pushed to another app, its parent.
--
-- `parent_id` names the app a review app belongs to: its permissions are the parent's, its owner
-- the parent's owner. No foreign key: when the parent goes, its review apps are destroyed by
-- the review_apps plugin (paas_app_destroying), which finds them by this id.
ALTER TABLE apps ADD COLUMN parent_id INTEGER;
CREATE INDEX apps_parent_id ON apps(parent_id);

-- What a review app was made from: the parent's branch, and when it was created and last pushed
-- (the stale timer reads `pushed_at`). One review app per branch of a parent.
CREATE TABLE review_apps (
    app_id      INTEGER PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    parent_id   INTEGER NOT NULL,
    branch      TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    pushed_at   TEXT NOT NULL,
    UNIQUE (parent_id, branch)
);

-- Teams: every SSH key belongs to a user, every app has an owner and collaborators with permissions.
-- Today's keys become users named after them (or join the user of that name), keeping their admin
-- bit; the first admin owns every existing app. Nothing is lost and nobody is locked out.
ALTER TABLE ssh_keys ADD COLUMN user_id INTEGER REFERENCES users(id) ON DELETE CASCADE;

INSERT INTO users (name, password_hash, is_admin, created_at)
    SELECT name, '', is_admin, created_at FROM ssh_keys WHERE name NOT IN (SELECT name FROM users)
    ORDER BY id;

UPDATE users SET is_admin = 1 WHERE name IN (SELECT name FROM ssh_keys WHERE is_admin = 1);

UPDATE ssh_keys SET user_id = (SELECT users.id FROM users WHERE users.name = ssh_keys.name);

ALTER TABLE apps ADD COLUMN owner_id INTEGER REFERENCES users(id) ON DELETE SET NULL;

UPDATE apps SET owner_id = COALESCE(
    (SELECT user_id FROM ssh_keys WHERE is_admin = 1 ORDER BY id LIMIT 1),
    (SELECT id FROM users WHERE is_admin = 1 ORDER BY id LIMIT 1)
);

CREATE TABLE app_access (
    app_id       INTEGER NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    user_id      INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    permissions  TEXT NOT NULL,             -- comma-separated: view,deploy,operate,manage
    created_at   TEXT NOT NULL,
    PRIMARY KEY (app_id, user_id)
);

CREATE INDEX app_access_user ON app_access(user_id);
CREATE INDEX ssh_keys_user ON ssh_keys(user_id);

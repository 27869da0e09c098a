-- The dashboard's flash messages (the outcome of a form action, with the end of a failed deploy's
-- output) wait here for the next page, not in the session cookie (which browsers cap at 4 KiB).
CREATE TABLE web_flashes (
    id            INTEGER PRIMARY KEY,
    session_hash  TEXT NOT NULL REFERENCES web_sessions(id_hash) ON DELETE CASCADE,
    category      TEXT NOT NULL,
    message       TEXT NOT NULL,
    at            REAL NOT NULL             -- unix time
);

CREATE INDEX web_flashes_session ON web_flashes(session_hash, id);

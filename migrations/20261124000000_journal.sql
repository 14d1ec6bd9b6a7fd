-- The journal: runs, and the append-only events of each run.

-- One walk through a runbook against one target.
CREATE TABLE runs (
    id            TEXT PRIMARY KEY NOT NULL,
    runbook_name  TEXT NOT NULL,
    -- Lowercase hex SHA-256 of the runbook text, to tell when the file changed since.
    runbook_hash  TEXT NOT NULL,
    runbook_text  TEXT NOT NULL,
    -- The target URL with its password redacted.
    target        TEXT NOT NULL,
    mode          TEXT NOT NULL CHECK (mode IN ('rehearsal', 'production')),
    -- user@host of whoever started it.
    operator      TEXT NOT NULL,
    -- Where it came from: the wizard or a headless check.
    origin        TEXT NOT NULL CHECK (origin IN ('wizard', 'check')),
    started_at    TEXT NOT NULL,
    finished_at   TEXT
) STRICT;

-- What happened, in order. Never updated, never deleted.
CREATE TABLE events (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    seq      INTEGER NOT NULL,
    at       TEXT NOT NULL,
    step_id  TEXT,
    kind     TEXT NOT NULL,
    -- The event's fields as JSON (secrets masked before they get here).
    data     TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

CREATE INDEX events_by_step ON events (run_id, step_id, seq);

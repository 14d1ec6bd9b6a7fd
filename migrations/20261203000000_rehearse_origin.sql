-- Runs may also come from `cutover rehearse`. SQLite cannot change a CHECK constraint in
-- place: the tables are rebuilt, events last so that nothing refers to the old runs table when
-- it is dropped.
CREATE TABLE runs_new (
    id            TEXT PRIMARY KEY NOT NULL,
    runbook_name  TEXT NOT NULL,
    runbook_hash  TEXT NOT NULL,
    runbook_text  TEXT NOT NULL,
    target        TEXT NOT NULL,
    mode          TEXT NOT NULL CHECK (mode IN ('rehearsal', 'production')),
    operator      TEXT NOT NULL,
    -- Where it came from: the wizard, a headless check, or a rehearsal on a restored copy.
    origin        TEXT NOT NULL CHECK (origin IN ('wizard', 'check', 'rehearse')),
    started_at    TEXT NOT NULL,
    finished_at   TEXT
) STRICT;
INSERT INTO runs_new SELECT id, runbook_name, runbook_hash, runbook_text, target, mode, operator, origin, started_at, finished_at FROM runs;

CREATE TABLE events_copy AS SELECT run_id, seq, at, step_id, kind, data, output FROM events;
DROP INDEX events_by_step;
DROP TABLE events;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;

CREATE TABLE events (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    seq      INTEGER NOT NULL,
    at       TEXT NOT NULL,
    step_id  TEXT,
    kind     TEXT NOT NULL,
    data     TEXT NOT NULL,
    output   TEXT,
    PRIMARY KEY (run_id, seq)
) STRICT;
INSERT INTO events SELECT run_id, seq, at, step_id, kind, data, output FROM events_copy;
DROP TABLE events_copy;
CREATE INDEX events_by_step ON events (run_id, step_id, seq);

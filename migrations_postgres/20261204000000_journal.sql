-- The journal in a team's PostgreSQL control database (`--journal-url`), in schema `cutover`:
-- the same runs and append-only events as the embedded SQLite journal.

-- One walk through a runbook against one target.
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    runbook_name  TEXT NOT NULL,
    -- Lowercase hex SHA-256 of the runbook text, to tell when the file changed since.
    runbook_hash  TEXT NOT NULL,
    runbook_text  TEXT NOT NULL,
    -- The target URL with its password redacted.
    target        TEXT NOT NULL,
    mode          TEXT NOT NULL CHECK (mode IN ('rehearsal', 'production')),
    -- user@host of whoever started it.
    operator      TEXT NOT NULL,
    origin        TEXT NOT NULL CHECK (origin IN ('wizard', 'check', 'rehearse')),
    -- RFC 3339, as the embedded journal keeps them (they sort as text).
    started_at    TEXT NOT NULL,
    finished_at   TEXT
);

-- What happened, in order. Never updated, never deleted.
CREATE TABLE events (
    run_id   TEXT NOT NULL REFERENCES runs (id),
    seq      BIGINT NOT NULL,
    at       TEXT NOT NULL,
    step_id  TEXT,
    kind     TEXT NOT NULL,
    -- The event's fields as JSON (secrets masked before they get here).
    data     TEXT NOT NULL,
    -- A step's output, as it is.
    output   TEXT,
    PRIMARY KEY (run_id, seq)
);

CREATE INDEX events_by_step ON events (run_id, step_id, seq);

-- Who holds a run (its wizard or check holds a session advisory lock on it meanwhile).
CREATE TABLE holders (
    run_id  TEXT PRIMARY KEY REFERENCES runs (id),
    holder  TEXT NOT NULL
);

-- Each event wakes whoever listens (a watcher on another machine): the payload is the run.
CREATE FUNCTION notify_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('cutover_events', NEW.run_id);
    RETURN NULL;
END
$$;

CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION notify_event();

-- A second person's answer to a destructive step's request for approval (the two-person
-- rule): written once per request. `db_role` is who the server authenticated; the OS user and
-- host are what the approver's cutover says of itself.
CREATE TABLE approvals (
    request     TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (id),
    approve     BOOLEAN NOT NULL,
    name        TEXT,
    typed       TEXT NOT NULL DEFAULT '',
    reason      TEXT,
    from_ip     TEXT,
    host        TEXT NOT NULL,
    os_user     TEXT NOT NULL,
    db_role     TEXT NOT NULL DEFAULT current_user,
    decided_at  TEXT NOT NULL
);

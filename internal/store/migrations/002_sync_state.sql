-- The visible state of each auth project's sync: what was applied last and the last error.
CREATE TABLE sync_state (
    auth_project_id text PRIMARY KEY,
    -- 'ok', 'retrying' (the database cannot be reached) or 'error' (the table is missing or
    -- was altered so that rows cannot be written; a resync repairs it).
    state           text NOT NULL DEFAULT 'ok' CHECK (state IN ('ok', 'retrying', 'error')),
    last_applied_at timestamptz,
    applied_total   bigint NOT NULL DEFAULT 0,
    last_error      text,
    last_error_at   timestamptz,
    last_resync_at  timestamptz
);

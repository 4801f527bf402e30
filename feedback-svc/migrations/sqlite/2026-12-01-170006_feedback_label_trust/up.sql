-- See the PostgreSQL migration. SQLite has one writer at a time, so ids are drawn in commit
-- order and a snapshot is the highest id committed: `writer_xid` is kept only so both backends
-- share one schema, and stays 0.
ALTER TABLE feedback.feedback ADD COLUMN trusted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE feedback.feedback ADD COLUMN writer_xid BIGINT NOT NULL DEFAULT 0;

CREATE TABLE feedback.label_exclusions (
    user_id     TEXT PRIMARY KEY NOT NULL,
    excluded_by TEXT NOT NULL,
    excluded_at TIMESTAMP NOT NULL
);

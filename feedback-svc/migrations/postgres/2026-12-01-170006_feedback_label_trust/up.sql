-- Labels you can trust (docs/rollouts.md): who may judge a candidate, whose labels are left out,
-- and which rows a training job's snapshot holds.

-- The author was an admin (the token's role) when sending it: a confirmed label, which judges
-- candidates and is never trained on.
ALTER TABLE feedback.feedback ADD COLUMN trusted BOOLEAN NOT NULL DEFAULT FALSE;

-- The transaction that wrote the row (`pg_current_xact_id()`): a reader that took a snapshot
-- (`pg_current_snapshot()`) reads exactly the rows committed before it, whatever the order in
-- which ids were drawn and transactions committed. Rows already stored get this migration's
-- transaction, committed before any reader's snapshot.
ALTER TABLE feedback.feedback
    ADD COLUMN writer_xid BIGINT NOT NULL DEFAULT (pg_current_xact_id()::text::bigint);

-- Users whose labels no training job reads any more (`POST /admin/users/{id}/labels/exclude`).
CREATE TABLE feedback.label_exclusions (
    -- the token's `sub`
    user_id     TEXT PRIMARY KEY,
    -- the admin's name
    excluded_by TEXT NOT NULL,
    excluded_at TIMESTAMP NOT NULL
);

-- `feedback` is a database file attached under that name (see common::db).
CREATE TABLE feedback.feedback (
    id              INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id         TEXT NOT NULL,
    username        TEXT NOT NULL,
    prediction      INTEGER NOT NULL CHECK (prediction BETWEEN 0 AND 9),
    correct         BOOLEAN NOT NULL,
    label           INTEGER CHECK (label BETWEEN 0 AND 9),
    comment         TEXT NOT NULL DEFAULT '',
    prediction_id   TEXT,
    model           TEXT,
    model_version   INTEGER,
    input           BLOB CHECK (input IS NULL OR length(input) = 784),
    idempotency_key TEXT,
    request_hash    TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    CHECK (NOT correct OR (label IS NOT NULL AND label = prediction)),
    CHECK (correct OR label IS NULL OR label <> prediction)
);

CREATE UNIQUE INDEX feedback.feedback_idempotency_idx ON feedback (user_id, idempotency_key);
CREATE INDEX feedback.feedback_created_idx ON feedback (created_at);
CREATE INDEX feedback.feedback_training_idx ON feedback (id)
    WHERE label IS NOT NULL AND input IS NOT NULL;

CREATE TABLE feedback.outbox (
    id            INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    event_id      TEXT NOT NULL UNIQUE,
    event_type    TEXT NOT NULL,
    payload       TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    claimed_until TIMESTAMP,
    claim_token   TEXT,
    published_at  TIMESTAMP,
    last_error    TEXT
);

CREATE INDEX feedback.outbox_pending_idx ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX feedback.outbox_published_idx ON outbox (published_at) WHERE published_at IS NOT NULL;

CREATE SCHEMA IF NOT EXISTS feedback;

CREATE TABLE feedback.feedback (
    id              BIGSERIAL PRIMARY KEY,
    -- the token's `sub` and `name` of the user who sent it
    user_id         TEXT NOT NULL,
    username        TEXT NOT NULL,
    prediction      INTEGER NOT NULL CHECK (prediction BETWEEN 0 AND 9),
    correct         BOOLEAN NOT NULL,
    -- the true digit, when known: the prediction when `correct`, else what the user said
    label           INTEGER CHECK (label BETWEEN 0 AND 9),
    comment         TEXT NOT NULL DEFAULT '',
    -- the served prediction it is about, with what the model saw (28×28 grey bytes)
    prediction_id   TEXT,
    model           TEXT,
    model_version   INTEGER,
    input           BYTEA CHECK (input IS NULL OR octet_length(input) = 784),
    idempotency_key TEXT,
    -- SHA-256 of the normalised request, so a key reused for another body is refused
    request_hash    TEXT NOT NULL,
    created_at      TIMESTAMP NOT NULL,
    CHECK (NOT correct OR (label IS NOT NULL AND label = prediction)),
    CHECK (correct OR label IS NULL OR label <> prediction)
);

-- One row per retried request, also when two retries race.
CREATE UNIQUE INDEX feedback_idempotency_idx ON feedback.feedback (user_id, idempotency_key);
CREATE INDEX feedback_created_idx ON feedback.feedback (created_at);
CREATE INDEX feedback_training_idx ON feedback.feedback (id)
    WHERE label IS NOT NULL AND input IS NOT NULL;

-- Events written in the same transaction as the feedback, published by the relay.
CREATE TABLE feedback.outbox (
    id            BIGSERIAL PRIMARY KEY,
    event_id      TEXT NOT NULL UNIQUE,
    event_type    TEXT NOT NULL,
    -- the whole envelope, as JSON
    payload       TEXT NOT NULL,
    created_at    TIMESTAMP NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    -- a relay's lease: nobody else publishes the row until it runs out
    claimed_until TIMESTAMP,
    claim_token   TEXT,
    published_at  TIMESTAMP,
    last_error    TEXT
);

CREATE INDEX outbox_pending_idx ON feedback.outbox (id) WHERE published_at IS NULL;
CREATE INDEX outbox_published_idx ON feedback.outbox (published_at) WHERE published_at IS NOT NULL;

-- `retrain` is a database file attached under that name (see common::db).
CREATE TABLE retrain.jobs (
    id                 TEXT PRIMARY KEY NOT NULL,
    model              TEXT NOT NULL,
    epochs             INTEGER NOT NULL CHECK (epochs > 0),
    from_scratch       BOOLEAN NOT NULL,
    mnist_sample       INTEGER CHECK (mnist_sample IS NULL OR mnist_sample >= 0),
    state              TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'rejected', 'failed')),
    progress           TEXT NOT NULL DEFAULT '{}',
    metrics            TEXT,
    reason             TEXT,
    model_version      INTEGER,
    requested_by       TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    worker             TEXT,
    created_at         TIMESTAMP NOT NULL,
    started_at         TIMESTAMP,
    finished_at        TIMESTAMP
);

CREATE INDEX retrain.jobs_state_idx ON jobs (state, id);

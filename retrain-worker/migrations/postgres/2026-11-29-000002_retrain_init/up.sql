CREATE SCHEMA IF NOT EXISTS retrain;

CREATE TABLE retrain.jobs (
    -- UUIDv7: sorts by creation
    id                 TEXT PRIMARY KEY,
    model              TEXT NOT NULL,
    epochs             INTEGER NOT NULL CHECK (epochs > 0),
    from_scratch       BOOLEAN NOT NULL,
    -- MNIST training digits to use; NULL for the worker's configured default
    mnist_sample       INTEGER CHECK (mnist_sample IS NULL OR mnist_sample >= 0),
    state              TEXT NOT NULL
        CHECK (state IN ('queued', 'running', 'succeeded', 'rejected', 'failed')),
    -- JSON: the stage, epoch, loss, validation accuracy, time left
    progress           TEXT NOT NULL DEFAULT '{}',
    -- JSON: both scores, the gate's verdict, the training data
    metrics            TEXT,
    reason             TEXT,
    -- the version registered for this job (promoted when the job succeeded)
    model_version      INTEGER,
    requested_by       TEXT NOT NULL,
    attempts           INTEGER NOT NULL DEFAULT 0,
    worker             TEXT,
    created_at         TIMESTAMP NOT NULL,
    started_at         TIMESTAMP,
    finished_at        TIMESTAMP
);

CREATE INDEX jobs_state_idx ON retrain.jobs (state, id);

CREATE SCHEMA IF NOT EXISTS models;

CREATE TABLE models.model_versions (
    id             TEXT PRIMARY KEY,
    name           TEXT NOT NULL,
    version        INTEGER NOT NULL CHECK (version > 0),
    artifact       BYTEA NOT NULL,
    sha256         TEXT NOT NULL,
    -- JSON object: accuracy, loss, epochs, ...
    metrics        TEXT NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'retired')),
    -- 'initial' (trained by `cargo xtask train`) or 'retrain' (a retrain job)
    source         TEXT NOT NULL CHECK (source IN ('initial', 'retrain')),
    source_job_id  TEXT,
    created_at     TIMESTAMP NOT NULL,
    promoted_at    TIMESTAMP,
    UNIQUE (name, version)
);

-- Exactly one active version per model, enforced by the database.
CREATE UNIQUE INDEX model_versions_one_active ON models.model_versions (name) WHERE status = 'active';
-- A retrain job registers at most one version, however often it runs.
CREATE UNIQUE INDEX model_versions_one_per_job ON models.model_versions (source_job_id) WHERE source_job_id IS NOT NULL;

-- `models` is a database file attached under that name (see common::db).
CREATE TABLE models.model_versions (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    version        INTEGER NOT NULL CHECK (version > 0),
    artifact       BLOB NOT NULL,
    sha256         TEXT NOT NULL,
    metrics        TEXT NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'retired')),
    source         TEXT NOT NULL CHECK (source IN ('initial', 'retrain')),
    source_job_id  TEXT,
    created_at     TIMESTAMP NOT NULL,
    promoted_at    TIMESTAMP,
    UNIQUE (name, version)
);

CREATE UNIQUE INDEX models.model_versions_one_active ON model_versions (name) WHERE status = 'active';
CREATE UNIQUE INDEX models.model_versions_one_per_job ON model_versions (source_job_id) WHERE source_job_id IS NOT NULL;

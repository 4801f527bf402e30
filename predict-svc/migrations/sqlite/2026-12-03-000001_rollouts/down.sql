DROP TABLE models.excluded_labellers;
DROP TABLE models.rollout_outcomes;
DROP TABLE models.rollout_transitions;
DROP TABLE models.rollouts;
CREATE TABLE models.model_versions_old (
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
INSERT INTO models.model_versions_old
    SELECT id, name, version, artifact, sha256, metrics,
           CASE WHEN status IN ('candidate', 'active', 'retired') THEN status ELSE 'retired' END,
           source, source_job_id, created_at, promoted_at
    FROM models.model_versions;
DROP TABLE models.model_versions;
ALTER TABLE models.model_versions_old RENAME TO model_versions;
CREATE UNIQUE INDEX models.model_versions_one_active ON model_versions (name) WHERE status = 'active';
CREATE UNIQUE INDEX models.model_versions_one_per_job ON model_versions (source_job_id) WHERE source_job_id IS NOT NULL;

-- `models` is a database file attached under that name (see common::db). SQLite cannot change a
-- CHECK constraint: the table is rebuilt with the rollout stages and `traffic_share`.
CREATE TABLE models.model_versions_new (
    id             TEXT PRIMARY KEY NOT NULL,
    name           TEXT NOT NULL,
    version        INTEGER NOT NULL CHECK (version > 0),
    artifact       BLOB NOT NULL,
    sha256         TEXT NOT NULL,
    metrics        TEXT NOT NULL DEFAULT '{}',
    status         TEXT NOT NULL CHECK (status IN ('candidate', 'shadow', 'canary', 'active', 'rejected', 'rolled_back', 'retired')),
    source         TEXT NOT NULL CHECK (source IN ('initial', 'retrain')),
    source_job_id  TEXT,
    created_at     TIMESTAMP NOT NULL,
    promoted_at    TIMESTAMP,
    traffic_share  DOUBLE NOT NULL DEFAULT 0,
    UNIQUE (name, version)
);
INSERT INTO models.model_versions_new
    SELECT id, name, version, artifact, sha256, metrics, status, source, source_job_id,
           created_at, promoted_at, CASE WHEN status = 'active' THEN 1 ELSE 0 END
    FROM models.model_versions;
DROP TABLE models.model_versions;
ALTER TABLE models.model_versions_new RENAME TO model_versions;
CREATE UNIQUE INDEX models.model_versions_one_active ON model_versions (name) WHERE status = 'active';
CREATE UNIQUE INDEX models.model_versions_one_per_job ON model_versions (source_job_id) WHERE source_job_id IS NOT NULL;

CREATE TABLE models.rollouts (
    id                 TEXT PRIMARY KEY NOT NULL,
    model              TEXT NOT NULL,
    candidate_version  INTEGER NOT NULL,
    active_version     INTEGER NOT NULL,
    stage              TEXT NOT NULL,
    share              DOUBLE NOT NULL,
    paused             BOOLEAN NOT NULL DEFAULT 0,
    verdict            TEXT,
    state              TEXT NOT NULL,
    job_id             TEXT,
    started_at         TIMESTAMP NOT NULL,
    decided_at         TIMESTAMP,
    progress_at        TIMESTAMP
);
CREATE UNIQUE INDEX models.rollouts_one_open ON rollouts (model) WHERE verdict IS NULL;

CREATE TABLE models.rollout_transitions (
    id          INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    rollout_id  TEXT NOT NULL REFERENCES rollouts (id),
    from_stage  TEXT NOT NULL,
    to_stage    TEXT NOT NULL,
    share       DOUBLE NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT,
    stats       TEXT NOT NULL,
    at          TIMESTAMP NOT NULL
);
CREATE INDEX models.rollout_transitions_by_rollout ON rollout_transitions (rollout_id, id);

CREATE TABLE models.rollout_outcomes (
    seq                INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    rollout_id         TEXT NOT NULL REFERENCES rollouts (id),
    feedback_id        BIGINT NOT NULL,
    user_id            TEXT NOT NULL,
    requested          BOOLEAN NOT NULL,
    active_correct     BOOLEAN,
    candidate_correct  BOOLEAN,
    applied            BOOLEAN NOT NULL,
    excluded           BOOLEAN NOT NULL DEFAULT 0,
    at                 TIMESTAMP NOT NULL,
    UNIQUE (rollout_id, feedback_id)
);

-- Users whose labels an admin excluded (`labels.excluded`): their outcomes decide no rollout.
CREATE TABLE models.excluded_labellers (
    user_id  TEXT PRIMARY KEY NOT NULL,
    at       TIMESTAMP NOT NULL
);

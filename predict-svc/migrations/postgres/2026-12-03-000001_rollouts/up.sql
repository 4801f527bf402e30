-- Rollout stages: a version is candidate, shadow, canary, active, rejected, rolled_back or
-- retired; `traffic_share` is the share of users it serves (1 for the active version while no
-- canary runs, the canary's share for a candidate in canary).
ALTER TABLE models.model_versions DROP CONSTRAINT IF EXISTS model_versions_status_check;
ALTER TABLE models.model_versions ADD CONSTRAINT model_versions_status_check
    CHECK (status IN ('candidate', 'shadow', 'canary', 'active', 'rejected', 'rolled_back', 'retired'));
ALTER TABLE models.model_versions ADD COLUMN traffic_share DOUBLE PRECISION NOT NULL DEFAULT 0;
UPDATE models.model_versions SET traffic_share = 1 WHERE status = 'active';

-- One row per rollout; `state` is the controller's serialised `rollout::Rollout`.
CREATE TABLE models.rollouts (
    id                 TEXT PRIMARY KEY,
    model              TEXT NOT NULL,
    candidate_version  INTEGER NOT NULL,
    active_version     INTEGER NOT NULL,
    stage              TEXT NOT NULL,
    share              DOUBLE PRECISION NOT NULL,
    paused             BOOLEAN NOT NULL DEFAULT FALSE,
    verdict            TEXT,
    state              TEXT NOT NULL,
    job_id             TEXT,
    started_at         TIMESTAMP NOT NULL,
    decided_at         TIMESTAMP,
    progress_at        TIMESTAMP
);
-- At most one open rollout per model.
CREATE UNIQUE INDEX rollouts_one_open ON models.rollouts (model) WHERE verdict IS NULL;

-- The audit table: every stage change, why, who, and the statistics behind it.
CREATE TABLE models.rollout_transitions (
    id          BIGSERIAL PRIMARY KEY,
    rollout_id  TEXT NOT NULL REFERENCES models.rollouts (id),
    from_stage  TEXT NOT NULL,
    to_stage    TEXT NOT NULL,
    share       DOUBLE PRECISION NOT NULL,
    reason      TEXT NOT NULL,
    actor       TEXT,
    stats       TEXT NOT NULL,
    at          TIMESTAMP NOT NULL
);
CREATE INDEX rollout_transitions_by_rollout ON models.rollout_transitions (rollout_id, id);

-- Labelled outcomes, in the order the controller took them (under the rollout's lock), once
-- per feedback. `applied` is false while the rollout is paused.
CREATE TABLE models.rollout_outcomes (
    seq                BIGSERIAL PRIMARY KEY,
    rollout_id         TEXT NOT NULL REFERENCES models.rollouts (id),
    feedback_id        BIGINT NOT NULL,
    user_id            TEXT NOT NULL,
    requested          BOOLEAN NOT NULL,
    active_correct     BOOLEAN,
    candidate_correct  BOOLEAN,
    applied            BOOLEAN NOT NULL,
    excluded           BOOLEAN NOT NULL DEFAULT FALSE,
    at                 TIMESTAMP NOT NULL,
    UNIQUE (rollout_id, feedback_id)
);

-- Users whose labels an admin excluded (`labels.excluded`): their outcomes decide no rollout.
CREATE TABLE models.excluded_labellers (
    user_id  TEXT PRIMARY KEY NOT NULL,
    at       TIMESTAMP NOT NULL
);

DROP TABLE models.excluded_labellers;
DROP TABLE models.rollout_outcomes;
DROP TABLE models.rollout_transitions;
DROP TABLE models.rollouts;
UPDATE models.model_versions SET status = 'retired' WHERE status IN ('shadow', 'canary', 'rejected', 'rolled_back');
ALTER TABLE models.model_versions DROP COLUMN traffic_share;
ALTER TABLE models.model_versions DROP CONSTRAINT model_versions_status_check;
ALTER TABLE models.model_versions ADD CONSTRAINT model_versions_status_check
    CHECK (status IN ('candidate', 'active', 'retired'));

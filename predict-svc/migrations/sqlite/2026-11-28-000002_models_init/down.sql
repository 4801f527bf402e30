DROP TABLE models.model_versions;

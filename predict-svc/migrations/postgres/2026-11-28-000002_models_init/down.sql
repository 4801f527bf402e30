DROP TABLE models.model_versions;
DROP SCHEMA models;

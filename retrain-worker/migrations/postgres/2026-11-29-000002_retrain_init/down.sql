DROP TABLE retrain.jobs;

common::service_main!("retrain-worker", retrain_worker, migrate);

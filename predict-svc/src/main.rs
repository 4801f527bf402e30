common::service_main!("predict-svc", predict_svc, migrate);

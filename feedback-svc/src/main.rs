common::service_main!("feedback-svc", feedback_svc, migrate);

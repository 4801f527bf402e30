common::service_main!("notify-svc", notify_svc);

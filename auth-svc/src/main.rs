common::service_main!("auth-svc", auth_svc, migrate);

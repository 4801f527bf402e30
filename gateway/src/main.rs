common::service_main!("gateway", gateway);

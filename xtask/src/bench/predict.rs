//! `cargo xtask bench predict`.

use super::*;

const AUTH: Service = Service {
    name: "auth-svc",
    port: 18181,
};
const PREDICT: Service = Service {
    name: "predict-svc",
    port: 18182,
};
const GATEWAY: Service = Service {
    name: "gateway",
    port: 18180,
};

pub(super) fn predict(root: &Path) -> Result<()> {
    setup::run(root)?;
    train::train_models(root, false)?;
    let bin_dir = build(root, true)?;
    let signals = prepare([&AUTH, &PREDICT, &GATEWAY])?;

    let mut common = shared_env(AUTH.port);
    common.extend(
        [
            (
                "ORT_DYLIB_PATH",
                setup::onnxruntime_lib(root).display().to_string(),
            ),
            ("MODEL_DIR", train::model_dir(root).display().to_string()),
            ("PREDICT_URL", format!("http://127.0.0.1:{}", PREDICT.port)),
        ]
        .map(|(k, v)| (k.to_owned(), v)),
    );
    let upload = multipart_body(&bmp_of_test_digit(root)?);

    let mut all = Vec::new();
    for batching in [true, false] {
        let mut fleet = Fleet::new(signals.clone())?;
        let mut predict_env = common.clone();
        let (size, wait) = if batching { ("32", "2") } else { ("1", "0") };
        predict_env.push(("BATCH_MAX_SIZE".into(), size.into()));
        predict_env.push(("BATCH_MAX_WAIT_MS".into(), wait.into()));
        for (service, env) in [
            (&AUTH, &common),
            (&PREDICT, &predict_env),
            (&GATEWAY, &common),
        ] {
            let at = fleet.start(&bin_dir, service, service.port, env)?;
            fleet.wait_healthy(service.name, at)?;
        }
        let token = log_in(addr(GATEWAY.port))?;
        for (route, port) in [("predict-svc", PREDICT.port), ("gateway", GATEWAY.port)] {
            for clients in CONCURRENCY {
                if signals.load(Ordering::SeqCst) > 0 {
                    bail!("interrupted");
                }
                let figures = load(route, addr(port), &token, &upload, clients, batching);
                eprintln!(
                    "  {route:<12} batching {:<3} {clients:>2} clients: {:>7.1} req/s",
                    if batching { "on" } else { "off" },
                    figures.requests as f64 / MEASURE.as_secs_f64()
                );
                all.push(figures);
            }
        }
        fleet.stop_all();
    }
    print_table(&all);
    Ok(())
}

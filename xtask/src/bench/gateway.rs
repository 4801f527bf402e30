//! `cargo xtask bench gateway`.

use super::*;

const EDGE_AUTH: Service = Service {
    name: "auth-svc",
    port: 18171,
};
const EDGE_PREDICT: Service = Service {
    name: "predict-svc",
    port: 18172,
};
const EDGE_GATEWAY: Service = Service {
    name: "gateway",
    port: 18170,
};
const EDGE_NGINX_PORT: u16 = 18173;

pub(super) fn gateway(root: &Path) -> Result<()> {
    setup::run(root)?;
    train::train_models(root, false)?;
    let nginx = find_nginx()?;
    let bin_dir = build(root, true)?;
    let signals = prepare([&EDGE_AUTH, &EDGE_PREDICT, &EDGE_GATEWAY])?;
    ensure_port_free("nginx", addr(EDGE_NGINX_PORT))?;

    let env = predict_env(root, EDGE_AUTH.port, EDGE_PREDICT.port);
    let mut fleet = Fleet::new(signals.clone())?;
    start_all(
        &mut fleet,
        &bin_dir,
        &[&EDGE_AUTH, &EDGE_PREDICT, &EDGE_GATEWAY],
        &env,
    )?;
    let proxy = Nginx::start(&nginx, EDGE_NGINX_PORT, EDGE_PREDICT.port)?;
    let token = log_in(addr(EDGE_GATEWAY.port))?;
    let upload = multipart_body(&bmp_of_test_digit(root)?);
    let mut all = Vec::new();
    for clients in CONCURRENCY {
        for (route, port) in [
            ("predict-svc", EDGE_PREDICT.port),
            ("gateway", EDGE_GATEWAY.port),
            ("nginx", EDGE_NGINX_PORT),
        ] {
            if signals.load(Ordering::SeqCst) > 0 {
                bail!("interrupted");
            }
            let figures = load(route, addr(port), &token, &upload, clients, true);
            eprintln!(
                "  {route:<12} {clients:>2} clients: {:>7.1} req/s",
                figures.requests as f64 / MEASURE.as_secs_f64()
            );
            all.push(figures);
        }
    }
    drop(proxy);
    fleet.stop_all();

    print_edge_table(&all);
    Ok(())
}

/// NGINX from the system (Debian's `nginx` package): found, or installed with apt-get when this
/// runs as root.
fn find_nginx() -> Result<std::path::PathBuf> {
    let known = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"];
    if let Some(path) = known
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
    {
        return Ok(path);
    }
    let is_root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !is_root {
        bail!(
            "NGINX is not installed: `sudo apt-get install nginx-light` (or nginx), then run again"
        );
    }
    eprintln!("installing NGINX (Debian's nginx-light) for the comparison...");
    let status = std::process::Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", "nginx-light"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()
        .context("running apt-get")?;
    if !status.success() {
        bail!("apt-get install nginx-light failed ({status})");
    }
    known
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.is_file())
        .context("nginx is still not found after installing it")
}

/// NGINX in the foreground with a configuration of ours, in a folder of its own; stopped on drop.
struct Nginx {
    child: std::process::Child,
    dir: std::path::PathBuf,
}

impl Nginx {
    fn start(binary: &Path, port: u16, upstream_port: u16) -> Result<Nginx> {
        let dir =
            std::env::temp_dir().join(format!("predictloop-bench-nginx-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("logs"))?;
        let workers = thread::available_parallelism().map_or(1, |n| n.get());
        // Like the gateway: one worker per core, keep-alive both ways, no access log, bodies up
        // to 10 MiB.
        let config = format!(
            "daemon off;\nmaster_process on;\nworker_processes {workers};\npid {dir}/nginx.pid;\n\
             error_log {dir}/logs/error.log warn;\nevents {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
             \x20 upstream predict {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}\n\
             \x20 server {{\n    listen 127.0.0.1:{port};\n    client_max_body_size 10m;\n    keepalive_requests 1000000;\n\
             \x20   location / {{\n      proxy_pass http://predict;\n      proxy_http_version 1.1;\n\
             \x20     proxy_set_header Connection \"\";\n      proxy_request_buffering off;\n    }}\n  }}\n}}\n",
            dir = dir.display()
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config)?;
        let child = std::process::Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .stdin(std::process::Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(addr(port)).is_err() {
            if Instant::now() > deadline {
                bail!(
                    "nginx did not listen on {port}; see {}/logs/error.log",
                    dir.display()
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
        eprintln!("started nginx (pid {}) on 127.0.0.1:{port}", child.id());
        Ok(Nginx { child, dir })
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGQUIT: NGINX's graceful stop; then make sure.
        let _ = std::process::Command::new("kill")
            .args(["-QUIT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every row, then what the gateway and NGINX add over calling predict-svc directly.
fn print_edge_table(all: &[Figures]) {
    println!();
    println!(
        "POST /api/v1/predict (mnist-mlp): straight to predict-svc, through the gateway (token \
         check and rate limit on, counted in Redis), through NGINX (proxy_pass, keep-alive \
         upstream); {} s per row after {} s warm-up, release build, all on this machine",
        MEASURE.as_secs(),
        WARM_UP.as_secs()
    );
    println!(
        "{:<12} {:>8} {:>10} {:>10} {:>10} {:>7}",
        "to", "clients", "req/s", "p50 ms", "p99 ms", "errors"
    );
    for f in all {
        println!(
            "{:<12} {:>8} {:>10.1} {:>10.2} {:>10.2} {:>7}",
            f.route,
            f.clients,
            f.requests as f64 / MEASURE.as_secs_f64(),
            ms(f.p50),
            ms(f.p99),
            f.errors
        );
    }
    println!();
    for clients in CONCURRENCY {
        let row = |route: &str| {
            all.iter()
                .find(|f| f.route == route && f.clients == clients)
        };
        if let (Some(direct), Some(gw), Some(ng)) =
            (row("predict-svc"), row("gateway"), row("nginx"))
        {
            println!(
                "{clients:>2} clients: the gateway adds {:+.2} ms at p50 and {:+.2} ms at p99 over predict-svc \
                 (NGINX adds {:+.2} / {:+.2}); gateway throughput {:.0} % of NGINX's",
                ms(gw.p50) - ms(direct.p50),
                ms(gw.p99) - ms(direct.p99),
                ms(ng.p50) - ms(direct.p50),
                ms(ng.p99) - ms(direct.p99),
                100.0 * gw.requests as f64 / ng.requests.max(1) as f64
            );
        }
    }
}

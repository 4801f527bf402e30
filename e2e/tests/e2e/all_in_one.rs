//! The all-in-one process itself (`predictloop::System`): a start that fails part-way leaves
//! nothing of itself running.

use crate::helpers::System;
use std::collections::HashSet;
use std::time::Duration;

/// The inodes of this process's listening TCP sockets (Linux: its descriptors' sockets that
/// `/proc/net/tcp` and `tcp6` list in state LISTEN). The whole process's: this relies on
/// nextest's one process per test (`cargo xtask test`), where no other test opens servers
/// beside this one.
fn listening_sockets() -> HashSet<String> {
    let own: HashSet<String> = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            Some(
                target
                    .strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .to_owned(),
            )
        })
        .collect();
    let mut listening = HashSet::new();
    for table in ["/proc/self/net/tcp", "/proc/self/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // `st` 0A is LISTEN; the inode is the tenth field.
            if fields.get(3) == Some(&"0A") && fields.get(9).is_some_and(|i| own.contains(*i)) {
                listening.insert(fields[9].to_owned());
            }
        }
    }
    listening
}

#[tokio::test]
async fn a_start_that_fails_at_the_gateway_stops_the_services_it_had_started() {
    // The gateway's address is taken, so the gateway, started last, cannot bind.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let before = listening_sockets();
    assert!(!before.is_empty(), "the taken address is counted");

    let error = System::start_failing(|settings| settings.set("BIND_ADDR", address)).await;
    let error = format!("{error:#}");
    assert!(error.contains("starting the gateway"), "{error}");

    // The five services behind it had their ports; all of them are closed again (a server's
    // listeners close as it finishes stopping, so this waits a little for the last ones).
    let mut left = listening_sockets();
    for _ in 0..50 {
        if left == before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = listening_sockets();
    }
    assert_eq!(
        left.difference(&before).count(),
        0,
        "listening sockets left open by a failed start"
    );
}

//! Config reload on SIGHUP and graceful shutdown on SIGTERM, on the real process.

mod common;

use std::time::Duration;

use common::*;

const CONFIG: &str = r#"
[server]
listen = "{listen}"
upstream = "{upstream}"

[admin]
listen = "{admin}"

[session]
keys = ["{session_key}"]

[[routes]]
path_prefix = "/members/"
auth = "{members}"

[[routes]]
path_prefix = "/"
auth = "public"
"#;

fn status(sidecar: &Sidecar, path: &str) -> u16 {
    client()
        .get(sidecar.url(path))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

#[test]
fn sighup_reloads_a_valid_config_and_refuses_an_invalid_one() {
    let upstream = Upstream::start();
    let sidecar = Sidecar::start(&CONFIG.replace("{members}", "public"), &upstream.url());
    assert_eq!(status(&sidecar, "/members/page"), 200);

    // A valid change takes effect for new requests.
    let text = std::fs::read_to_string(sidecar.config_path()).unwrap();
    std::fs::write(
        sidecar.config_path(),
        text.replace(
            "auth = \"public\"\n\n[[routes]]\npath_prefix = \"/\"",
            "auth = \"api\"\n\n[[routes]]\npath_prefix = \"/\"",
        ),
    )
    .unwrap();
    sidecar.signal("HUP");
    let reloaded = sidecar.metric_reaching("sso_sidecar_config_reloads_total{outcome=\"ok\"}", 1.0);
    assert_eq!(reloaded, 1.0, "{}", sidecar.log());
    assert_eq!(status(&sidecar, "/members/page"), 401);

    // An invalid one is refused with its errors logged; the running config stays.
    let valid = std::fs::read_to_string(sidecar.config_path()).unwrap();
    std::fs::write(
        sidecar.config_path(),
        valid.replace("auth = \"api\"", "auth = \"sometimes\""),
    )
    .unwrap();
    sidecar.signal("HUP");
    assert_eq!(
        sidecar.metric_reaching("sso_sidecar_config_reloads_total{outcome=\"error\"}", 1.0),
        1.0
    );
    sidecar.log_containing("config reload refused: error:");
    sidecar.log_containing("routes[0].auth");
    assert_eq!(status(&sidecar, "/members/page"), 401);
    assert_eq!(status(&sidecar, "/other"), 200);
}

#[test]
fn requests_in_flight_during_a_reload_finish() {
    let upstream = Upstream::start();
    let sidecar = Sidecar::start(&CONFIG.replace("{members}", "public"), &upstream.url());
    let url = sidecar.url("/slow/1500");
    let slow = std::thread::spawn(move || client().get(url).send().unwrap().status().as_u16());
    std::thread::sleep(Duration::from_millis(300));
    sidecar.signal("HUP");
    assert_eq!(slow.join().unwrap(), 200);
}

#[test]
fn sigterm_lets_requests_in_flight_finish() {
    let upstream = Upstream::start();
    let mut sidecar = Sidecar::start(&CONFIG.replace("{members}", "public"), &upstream.url());
    let url = sidecar.url("/slow/1500");
    let slow = std::thread::spawn(move || client().get(url).send().map(|r| r.status().as_u16()));
    std::thread::sleep(Duration::from_millis(300));
    sidecar.signal("TERM");
    assert_eq!(
        slow.join().unwrap().unwrap(),
        200,
        "the request in flight completed"
    );
    assert!(
        sidecar.wait_exit(Duration::from_secs(15)).is_some(),
        "the process exits after draining"
    );
}

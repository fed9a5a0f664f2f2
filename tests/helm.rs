//! The Helm chart, rendered by Helm's own Go SDK (PyPI `helm-python-sdk`, installed into
//! `.venv` by `make test`) with the default, sidecar-mode and Redis values: every object
//! validated against the Kubernetes schemas, the chart's promises checked
//! (`helm/test_chart.py`), each rendered config accepted by `sso-sidecar check`, and every
//! metric the alert rules and the Grafana dashboard query exported by the sidecar.

mod common;

use std::process::Command;

use common::*;

#[test]
fn chart_renders_valid_kubernetes_objects_and_configs_the_sidecar_accepts() {
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        ".venv is missing: run `make test` (it installs the chart tools)"
    );
    let out = tempfile::tempdir().unwrap();
    let rendered = Command::new(&python)
        .arg(repo_root().join("helm/test_chart.py"))
        .arg(out.path())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&rendered.stdout);
    assert!(
        rendered.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&rendered.stderr)
    );

    let secrets = [
        ("SSO_SESSION_KEY", SESSION_KEY),
        ("OIDC_KEYCLOAK_SECRET", "keycloak-secret"),
        ("SSO_REDIS_URL", "redis://:pw@redis-master:6379/0"),
    ];
    // The sidecar values turn on TLS with a mounted Secret: a certificate stands in for it.
    let tls_dir = out.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["shop.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    std::fs::write(tls_dir.join("tls.crt"), cert.pem()).unwrap();
    std::fs::write(tls_dir.join("tls.key"), key.serialize_pem()).unwrap();
    for values in ["default", "sidecar", "redis"] {
        let config = out.path().join(format!("{values}.toml"));
        let text = std::fs::read_to_string(&config).unwrap();
        std::fs::write(
            &config,
            text.replace("/etc/sso-sidecar-tls/", &format!("{}/", tls_dir.display())),
        )
        .unwrap();
        let path = config.to_str().unwrap();
        let (code, stdout, stderr) = run_cli(&["check", "-c", path], &secrets, out.path());
        assert_eq!(code, 0, "{values}: {stdout}{stderr}");
        assert!(stdout.contains("0.0.0.0:8080"), "{values}: {stdout}");
    }
    let redis = std::fs::read_to_string(out.path().join("redis.toml")).unwrap();
    assert!(redis.contains("kind = \"redis\""));

    // Every sso-sidecar metric the alert rules and the dashboard query is one it exports.
    let exported = sso_sidecar::metrics::Metrics::new();
    let exported = exported.family_names();
    let used = std::fs::read_to_string(out.path().join("redis.metrics")).unwrap();
    let used: Vec<&str> = used.lines().filter(|l| !l.is_empty()).collect();
    assert!(used.len() >= 8, "{used:?}");
    for name in used {
        assert!(
            exported.iter().any(|e| e == name),
            "{name} is queried by the chart but not exported (exported: {exported:?})"
        );
    }
}

//! `sso-sidecar import-icm` on the seed's example ICM configuration, round-tripped
//! through `check`.

mod common;

use common::*;

const SECRETS: [&str; 3] = [
    "w55~gl-saTtuqqRX_.W_fs~1dK3py2Mr31",
    "2Lam_p-bmpbgHezn28bVqtJw_4Y5Zkq2k1",
    "b94c0646-e169-4da2-a035-ad91e1433261",
];

fn check(toml: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("imported.toml");
    std::fs::write(&path, toml).unwrap();
    run_cli(&["check", "-c", path.to_str().unwrap()], env, &repo_root())
}

#[test]
fn the_icm_example_imports_and_passes_check() {
    let (code, toml, warnings) = run_cli(
        &["import-icm", "tests/fixtures/icm-sso.properties"],
        &[],
        &repo_root(),
    );
    assert_eq!(code, 0, "{warnings}");
    for secret in SECRETS {
        assert!(
            !toml.contains(secret),
            "secret {secret} leaked into:\n{toml}"
        );
    }
    for var in [
        "SSO_SESSION_KEY",
        "OIDC_AD_1_CLIENT_SECRET",
        "OIDC_AD_2_CLIENT_SECRET",
        "OIDC_KC_1_CLIENT_SECRET",
        "OIDC_KC_2_CLIENT_SECRET",
    ] {
        assert!(
            toml.contains(&format!("#   {var}  (")),
            "{var} not listed in the header:\n{toml}"
        );
    }
    assert!(
        toml.contains("jwk_cache_lifetime = 3600000"),
        "durations kept:\n{toml}"
    );
    assert!(toml.contains("min_access_token_lifetime_left = 86400000"));
    assert!(toml.contains("accept_unsigned_tokens = true"));
    assert!(toml.contains("additional_scopes = [\"customScope1\", \"customScope2\"]"));
    assert!(
        warnings.contains("intershop.profile.attributeChange.customer.email: not an SSO property"),
        "{warnings}"
    );
    assert!(
        warnings.contains("intershop.authentication.oidc.unknownSetting"),
        "{warnings}"
    );

    let env = [
        ("SSO_SESSION_KEY", SESSION_KEY),
        ("OIDC_AD_1_CLIENT_SECRET", "a"),
        ("OIDC_AD_2_CLIENT_SECRET", "b"),
        ("OIDC_KC_1_CLIENT_SECRET", "c"),
        ("OIDC_KC_2_CLIENT_SECRET", "d"),
    ];
    let (code, summary, errors) = check(&toml, &env);
    assert_eq!(code, 0, "imported TOML must pass check:\n{errors}\n{toml}");
    assert!(summary.contains("Operations (\"Intershop\"): idps [oidc_kc_1, oidc_kc_2, oidc_ad_1, oidc_ad_2, localICM], logout LOCAL, self-administration CREATE,UPDATE"), "{summary}");
    assert!(summary.contains("inSPIRED-inTRONICS-Anonymous (\"inTRONICS\"): idps [oidc_ad_1], logout EXTERNAL, self-administration UPDATE"), "{summary}");
    assert!(
        summary.contains(
            "Myers (\"Myers - Subdivision of inSPIRED\"): idps [oidc_kc_1, oidc_ad_1, localICM]"
        ),
        "{summary}"
    );
    assert!(summary.contains("oidc_ad_1: oidc \"OpenID Connect AD 1\" issuer https://login.microsoftonline.com/43566bc5-e954-4049-909f-76ce0392de31/v2.0 client 24b5f295-e171-4d8e-9f27-212f645641fa"), "{summary}");
    assert!(
        summary.contains("localICM: local \"localICM\""),
        "{summary}"
    );

    // Without the environment, check names every variable the header listed.
    let (code, _, errors) = check(&toml, &[]);
    assert_eq!(code, 2);
    for (var, _) in env {
        assert!(errors.contains(var), "{var}: {errors}");
    }
}

#[test]
fn keep_secrets_keeps_them() {
    let (code, toml, _) = run_cli(
        &[
            "import-icm",
            "--keep-secrets",
            "tests/fixtures/icm-sso.properties",
        ],
        &[],
        &repo_root(),
    );
    assert_eq!(code, 0);
    for secret in SECRETS {
        assert!(toml.contains(secret), "{secret}");
    }
    let (code, _, errors) = check(&toml, &[("SSO_SESSION_KEY", SESSION_KEY)]);
    assert_eq!(code, 0, "{errors}");
}

#[test]
fn broken_configuration_json_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.properties");
    std::fs::write(&path, "intershop.authentication.identityprovider.x.type=oidc\nintershop.authentication.identityprovider.x.configuration={\"issuer\": \n").unwrap();
    let (code, _, errors) = run_cli(&["import-icm", path.to_str().unwrap()], &[], &repo_root());
    assert_eq!(code, 2);
    assert!(
        errors.contains(":2: identity provider x: configuration is not JSON"),
        "{errors}"
    );
    let (code, _, errors) = run_cli(
        &["import-icm", "/nonexistent.properties"],
        &[],
        &repo_root(),
    );
    assert_eq!(code, 2, "{errors}");
}

//! The command line as users run it: `check`, `keygen`, and `run` refusing a bad config.

mod common;

use base64::Engine as _;
use common::*;

const SIDECAR_ENV: [(&str, &str); 5] = [
    ("SSO_SESSION_KEY", SESSION_KEY),
    ("OIDC_AD_1_SECRET", "ad-1-secret-value"),
    ("OIDC_AD_2_SECRET", "ad-2-secret-value"),
    ("OIDC_KC_1_SECRET", "kc-1-secret-value"),
    ("OIDC_KC_2_SECRET", "kc-2-secret-value"),
];

#[test]
fn check_accepts_the_icm_example_and_summarizes_it() {
    let (code, out, err) = run_cli(
        &["check", "-c", "conf/sidecar.toml"],
        &SIDECAR_ENV,
        &repo_root(),
    );
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    for org in [
        "Operations",
        "inSPIRED",
        "Myers",
        "inSPIRED-inTRONICS-Anonymous",
    ] {
        assert!(out.contains(&format!("  {org} (")), "{org} missing:\n{out}");
    }
    for idp in [
        "oidc_ad_1",
        "oidc_ad_2",
        "oidc_kc_1",
        "oidc_kc_2",
        "localICM",
    ] {
        assert!(out.contains(&format!("  {idp}: ")), "{idp} missing:\n{out}");
    }
    assert!(out.contains("Operations (\"Intershop\"): idps [oidc_kc_1, oidc_kc_2, oidc_ad_1, oidc_ad_2, localICM], logout LOCAL"), "{out}");
    assert!(out.contains("inSPIRED-inTRONICS-Anonymous (\"inTRONICS\"): idps [oidc_ad_1], logout EXTERNAL, self-administration UPDATE"), "{out}");
    for (_, secret) in SIDECAR_ENV {
        assert!(
            !out.contains(secret) && !err.contains(secret),
            "secret printed:\n{out}{err}"
        );
    }
}

#[test]
fn check_without_secrets_names_each_missing_variable() {
    let (code, out, err) = run_cli(&["check", "-c", "conf/sidecar.toml"], &[], &repo_root());
    assert_eq!(code, 2, "{out}{err}");
    for (var, _) in SIDECAR_ENV {
        assert!(
            err.contains(&format!("environment variable {var} is not set")),
            "{var}:\n{err}"
        );
    }
}

#[test]
fn check_accepts_the_demo_config() {
    let (code, out, err) = run_cli(
        &["check", "-c", "conf/demo.toml"],
        &[("SSO_SESSION_KEY", SESSION_KEY)],
        &repo_root(),
    );
    assert_eq!(code, 0, "{out}{err}");
}

#[test]
fn check_config_from_environment_variable() {
    let (code, out, err) = run_cli(
        &["check"],
        &[
            ("SSO_SIDECAR_CONFIG", "conf/demo.toml"),
            ("SSO_SESSION_KEY", SESSION_KEY),
        ],
        &repo_root(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("conf/demo.toml: ok"), "{out}");
}

#[test]
fn check_names_every_broken_key() {
    let (code, out, err) = run_cli(
        &["check", "-c", "tests/fixtures/broken.toml"],
        &[],
        &repo_root(),
    );
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        out.is_empty(),
        "nothing on stdout for an invalid config: {out}"
    );
    let expected = [
        "server.listen",
        "server.upstream",
        "server.trusted_proxies[0]",
        "admin.listen",
        "oidc.remote",
        "oidc.max_clock_skew",
        "oidc.state_cokie_name: unknown key (did you mean `state_cookie_name`?)",
        "session.keys[0]: must be 32 bytes",
        "identity_providers.kc.issuer: not a URL",
        "identity_providers.kc.client_secret: missing",
        "identity_providers.kc.client_secret_expire_at",
        "identity_providers.odd.type",
        "organizations.Operations.identity_providers[1]: \"oidc_ad_9\" is not defined",
        "organizations.Operations.logout_policy",
        "organizations.Operations.self_administration_policy[1]",
        "routes[1].path_prefix: unreachable",
        "routes[2].auth",
    ];
    for key in expected {
        assert!(
            err.contains(&format!("error: tests/fixtures/broken.toml: {key}")),
            "{key} not reported:\n{err}"
        );
    }
    for line in err.lines() {
        assert!(
            line.starts_with("error: tests/fixtures/broken.toml: "),
            "unexpected line: {line}"
        );
    }
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn check_reports_syntax_errors_with_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\nupstream = \n").unwrap();
    let (code, _, err) = run_cli(&["check", "-c", path.to_str().unwrap()], &[], &repo_root());
    assert_eq!(code, 2);
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn check_of_a_missing_file() {
    let (code, _, err) = run_cli(
        &["check", "-c", "/nonexistent/sidecar.toml"],
        &[],
        &repo_root(),
    );
    assert_eq!(code, 2);
    assert!(err.contains("cannot read config file"), "{err}");
}

#[test]
fn run_refuses_an_invalid_config() {
    let (code, _, err) = run_cli(
        &["run", "-c", "tests/fixtures/broken.toml"],
        &[],
        &repo_root(),
    );
    assert_eq!(code, 2);
    assert!(err.contains("oidc.remote"), "{err}");
}

#[test]
fn unknown_command_exits_2() {
    let (code, _, err) = run_cli(&["serve"], &[], &repo_root());
    assert_eq!(code, 2, "{err}");
}

#[test]
fn keygen_prints_fresh_32_byte_keys() {
    let (code, first, _) = run_cli(&["keygen"], &[], &repo_root());
    assert_eq!(code, 0);
    let (_, second, _) = run_cli(&["keygen"], &[], &repo_root());
    assert_ne!(first, second);
    let key = base64::engine::general_purpose::STANDARD
        .decode(first.trim())
        .unwrap();
    assert_eq!(key.len(), 32);
}

#[test]
fn secrets_never_appear_in_check_output_or_logs() {
    let secret = "literal-client-secret-4711";
    let config = format!(
        r#"
[server]
listen = "{{listen}}"
upstream = "{{upstream}}"
public_url = "http://127.0.0.1:1"
[admin]
listen = "{{admin}}"
[log]
level = "debug"
[oidc]
remote = "supported"
[session]
keys = ["{{session_key}}"]
[identity_providers.kc]
type = "oidc"
name = "KC"
issuer = "http://127.0.0.1:1/realms/x"
client_id = "ICM"
client_secret = "{secret}"
[[routes]]
path_prefix = "/"
auth = "public"
"#
    );
    let upstream = Upstream::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    let text = config
        .replace("{listen}", "127.0.0.1:1")
        .replace("{admin}", "127.0.0.1:2")
        .replace("{upstream}", &upstream.url())
        .replace("{session_key}", SESSION_KEY);
    std::fs::write(&path, text).unwrap();
    let (code, out, err) = run_cli(&["check", "-c", path.to_str().unwrap()], &[], &repo_root());
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(secret) && !err.contains(secret), "{out}{err}");
    assert!(!out.contains(SESSION_KEY) && !err.contains(SESSION_KEY));

    let sidecar = Sidecar::start(&config, &upstream.url());
    let response = client().get(sidecar.url("/page")).send().unwrap();
    assert_eq!(response.status(), 200);
    let log = sidecar.log_containing("\"path\":\"/page\"");
    assert!(!log.contains(secret), "{log}");
    assert!(!log.contains(SESSION_KEY), "{log}");
}

#[test]
fn backend_examples_pass_check() {
    let env = [
        ("SSO_SESSION_KEY", SESSION_KEY),
        ("AZURE_CLIENT_SECRET", "a"),
        ("CT_INTROSPECTION_SECRET", "b"),
        ("KEYCLOAK_CLIENT_SECRET", "c"),
        ("SPREE_PUBLISHABLE_KEY", "pk"),
        ("CT_API_SECRET", "d"),
    ];
    for file in ["conf/commercetools.toml", "conf/spree.toml"] {
        let (code, out, err) = run_cli(&["check", "-c", file], &env, &repo_root());
        assert_eq!(code, 0, "{file}:\n{out}{err}");
        assert!(
            !format!("{out}{err}").contains("no additional_scopes entry"),
            "{out}{err}"
        );
    }
    // Without the API's scope Azure issues Graph tokens, which the audience never matches.
    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(repo_root().join("conf/commercetools.toml")).unwrap();
    let without: String = example
        .lines()
        .filter(|l| !l.starts_with("additional_scopes"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.path().join("ct.toml");
    std::fs::write(&path, without).unwrap();
    let (code, out, err) = run_cli(&["check", "-c", path.to_str().unwrap()], &env, &repo_root());
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        format!("{out}{err}").contains("audiences names api://24b5f295-e171-4d8e-9f27-212f645641fa, but no additional_scopes entry asks for it"),
        "{out}{err}"
    );
}

#[test]
fn check_reports_store_problems() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, store: &str| {
        let path = dir.path().join(name);
        let text = format!(
            "[server]\nupstream = \"http://127.0.0.1:9000\"\n[session]\nkeys = [\"{SESSION_KEY}\"]\n{store}\n[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\n"
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let cases = [
        ("[store]\nkind = \"redis\"", "store.url: missing"),
        (
            "[store]\nkind = \"memcached\"",
            "store.kind: \"memcached\" is not one of",
        ),
        (
            "[store]\nkind = \"redis\"\nurl = \"http://cache:6379\"",
            "store.url: must be a redis://",
        ),
        (
            "[store]\nserver_side_sessions = true",
            "store.server_side_sessions: needs store.kind = \"redis\"",
        ),
        (
            "[store]\nkind = \"redis\"\nurl = \"env:NO_SUCH_REDIS_URL\"",
            "store.url: environment variable NO_SUCH_REDIS_URL",
        ),
        (
            "[store]\nkidn = \"redis\"",
            "store.kidn: unknown key (did you mean `kind`?)",
        ),
    ];
    for (i, (store, expected)) in cases.iter().enumerate() {
        let path = write(&format!("{i}.toml"), store);
        let (code, out, err) = run_cli(&["check", "-c", &path], &[], dir.path());
        assert_eq!(code, 2, "{store}: {out}{err}");
        assert!(
            err.contains(expected),
            "{store}: expected {expected:?} in:\n{err}"
        );
    }
    // A password in the URL never shows, not even in an error about the URL.
    let path = write(
        "secret.toml",
        "[store]\nkind = \"redis\"\nurl = \"ftp://user:hunter2@cache\"",
    );
    let (code, _, err) = run_cli(&["check", "-c", &path], &[], dir.path());
    assert_eq!(code, 2);
    assert!(!err.contains("hunter2"), "{err}");
    let path = write(
        "ok.toml",
        "[store]\nkind = \"redis\"\nurl = \"env:REDIS_URL\"",
    );
    let (code, out, err) = run_cli(
        &["check", "-c", &path],
        &[("REDIS_URL", "redis://:pw@cache:6379/0")],
        dir.path(),
    );
    assert_eq!(code, 0, "{out}{err}");
    assert!(!out.contains(":pw@"), "{out}");
}

/// A `store.path` that cannot be opened stops the start, naming the key (exit 2), instead
/// of running without the revocations it was meant to keep.
#[test]
fn run_stops_when_store_path_cannot_be_opened() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\nupstream = \"http://127.0.0.1:9\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[session]\nkeys = [\"{SESSION_KEY}\"]\n[store]\npath = \"{}\"\n",
            dir.path().join("no/such/dir/state.redb").display()
        ),
    )
    .unwrap();
    let (code, stdout, stderr) = run_cli(&["run", "-c", config.to_str().unwrap()], &[], dir.path());
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(
        format!("{stdout}{stderr}").contains("store.path"),
        "{stdout}{stderr}"
    );
}

/// `[pages]`: a shop's templates and catalogs are compiled and every page rendered in every
/// language by `check`; each mistake names its key and file (exit 2).
#[test]
fn check_names_page_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let templates = dir.path().join("templates");
    let messages = dir.path().join("messages");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::create_dir_all(&messages).unwrap();
    let write = |name: &str, pages: &str| {
        let path = dir.path().join(name);
        let text = format!(
            "[server]\nupstream = \"http://127.0.0.1:9000\"\n[session]\nkeys = [\"{SESSION_KEY}\"]\n{pages}\n[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\n"
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let check = |path: &str| run_cli(&["check", "-c", path], &[], dir.path());

    // A French catalog that lacks texts, and a template with a typo.
    std::fs::write(messages.join("fr.ftl"), "sign-in-title = Connexion\n").unwrap();
    std::fs::write(
        templates.join("signed_out.html"),
        "{% extends \"base.html\" %}{% block main %}<h1>{{ t(\"signed-out-heding\") }}</h1>{% endblock %}",
    )
    .unwrap();
    let path = write(
        "look.toml",
        "[pages]\naccent_color = \"#ffcc00\"\nlogo_url = \"http://cdn.example/logo.png\"",
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 2, "{out}{err}");
    for expected in [
        "pages.accent_color: white text on #ffcc00 has a contrast of 1.5:1",
        "pages.logo_url: must be an https:// URL",
    ] {
        assert!(err.contains(expected), "expected {expected:?} in:\n{err}");
    }
    let path = write(
        "broken.toml",
        &format!(
            "[pages]\nlanguages = [\"en\", \"fr\"]\nmessages = \"{}\"\ntemplates = \"{}\"",
            messages.display(),
            templates.display()
        ),
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 2, "{out}{err}");
    let expected = "pages.messages: fr.ftl lacks the message `sign-out`";
    assert!(err.contains(expected), "expected {expected:?} in:\n{err}");

    // With the catalog complete, the template's typo is what is left.
    let english = std::fs::read_to_string(repo_root().join("src/pages/messages/en.ftl")).unwrap();
    std::fs::write(messages.join("fr.ftl"), english).unwrap();
    let path = write(
        "typo.toml",
        &format!(
            "[pages]\nlanguages = [\"fr\", \"en\"]\nmessages = \"{}\"\ntemplates = \"{}\"",
            messages.display(),
            templates.display()
        ),
    );
    let (code, out, err) = check(&path);
    assert_eq!(code, 2, "{out}{err}");
    assert!(
        err.contains("pages.templates: signed_out.html (fr)")
            && err.contains("no message `signed-out-heding`"),
        "{err}"
    );

    // Fixed: accepted, and French is offered first.
    std::fs::remove_file(templates.join("signed_out.html")).unwrap();
    let (code, out, err) = check(&path);
    assert_eq!(code, 0, "{out}{err}");
}

/// The client authentication and protocol keys of an IdP: each mistake named (exit 2).
#[test]
fn check_names_client_authentication_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, idp: &str| {
        let path = dir.path().join(name);
        let text = format!(
            "[server]\nupstream = \"http://127.0.0.1:9000\"\npublic_url = \"https://shop.example\"\n[session]\nkeys = [\"{SESSION_KEY}\"]\n[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"\nissuer = \"https://idp.example\"\nclient_id = \"shop\"\n{idp}\n[organizations.Shop]\nexternal_name = \"Shop\"\nidentity_providers = [\"kc\"]\n[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\n"
        );
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let cases = [
        (
            "token_endpoint_auth = \"private_key_jwt\"",
            "identity_providers.kc.client_signing_key: missing (required for token_endpoint_auth = \"private_key_jwt\")",
        ),
        (
            "token_endpoint_auth = \"private_key_jwt\"\nclient_signing_key = \"not a key\"",
            "identity_providers.kc.client_signing_key: is not a PKCS#8 PEM private key",
        ),
        (
            "token_endpoint_auth = \"tls_client_auth\"",
            "identity_providers.kc.client_certificate: missing",
        ),
        (
            "token_endpoint_auth = \"client_secret_jwt\"",
            "identity_providers.kc.client_secret: missing",
        ),
        (
            "client_secret = \"s\"\ntoken_endpoint_auth = \"mtls\"",
            "identity_providers.kc.token_endpoint_auth: \"mtls\" is not one of",
        ),
        (
            "client_secret = \"s\"\nresource = [\"api\"]",
            "identity_providers.kc.resource[0]: must be an absolute URI",
        ),
        (
            "client_secret = \"s\"\npushed_authorization = \"sometimes\"",
            "identity_providers.kc.pushed_authorization: \"sometimes\" is not one of",
        ),
    ];
    for (i, (idp, expected)) in cases.iter().enumerate() {
        let path = write(&format!("{i}.toml"), idp);
        let (code, out, err) = run_cli(&["check", "-c", &path], &[], dir.path());
        assert_eq!(code, 2, "{idp}: {out}{err}");
        assert!(
            err.contains(expected),
            "{idp}: expected {expected:?} in:\n{err}"
        );
    }
    // A private key needs no client secret; the key itself never shows.
    let key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let path = write(
        "ok.toml",
        "token_endpoint_auth = \"private_key_jwt\"\nclient_signing_key = \"env:CLIENT_KEY\"\ndpop = true",
    );
    let (code, out, err) = run_cli(&["check", "-c", &path], &[("CLIENT_KEY", &key)], dir.path());
    assert_eq!(code, 0, "{out}{err}");
    assert!(!format!("{out}{err}").contains("PRIVATE KEY"));
}

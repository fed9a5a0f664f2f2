//! One test per validation rule: each feeds a config with one mistake and expects the key.

use std::path::Path;

use super::*;

const KEY: &str = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="; // 32 bytes

fn minimal() -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:8080"
upstream = "http://127.0.0.1:9000"
public_url = "https://shop.example.com"

[session]
keys = ["{KEY}"]
"#
    )
}

fn load(extra: &str) -> Result<Config, Vec<Problem>> {
    validate(&format!("{}\n{extra}", minimal()), Path::new("test.toml"))
}

/// Asserts the config fails and that one problem names `key` with text containing `needle`.
fn assert_problem(extra: &str, key: &str, needle: &str) -> Vec<Problem> {
    let problems = load(extra).expect_err("config should be invalid");
    assert!(
        problems
            .iter()
            .any(|p| p.key == key && p.message.contains(needle)),
        "expected a problem at {key} containing {needle:?}, got {problems:#?}"
    );
    problems
}

#[test]
fn minimal_config_is_valid_with_defaults() {
    let config = load("").unwrap();
    assert_eq!(config.oidc.max_clock_skew, Duration::from_secs(60));
    assert_eq!(config.oidc.jwk_cache_lifetime, Duration::from_secs(3600));
    assert_eq!(
        config.oidc.min_access_token_lifetime_left,
        Duration::from_secs(180)
    );
    assert_eq!(config.oidc.state_cookie_name, "oidc_state");
    assert!(!config.oidc.remote);
    assert!(!config.oidc.accept_unsigned_tokens);
    assert!(config.session.secure);
    assert_eq!(config.session.same_site, SameSite::Lax);
    assert_eq!(config.headers.prefix, "X-SSO-");
    assert_eq!(config.admin.listen.to_string(), "127.0.0.1:9090");
}

#[test]
fn unknown_keys_are_reported_with_a_suggestion() {
    let problems = assert_problem(
        "[oidc]\nmax_clock_skw = 5",
        "oidc.max_clock_skw",
        "did you mean `max_clock_skew`?",
    );
    assert_eq!(problems.len(), 1);
    assert_problem(
        "[identity_providers.a]\ntype = \"local\"\nname = \"A\"\nnmae = \"x\"",
        "identity_providers.a.nmae",
        "did you mean `name`?",
    );
    assert_problem(
        "[[routes]]\npath_prefix = \"/\"\nauht = \"public\"",
        "routes[0].auht",
        "did you mean `auth`?",
    );
    assert_problem("[sesion]\nx = 1", "sesion", "did you mean `session`?");
    assert_problem("[server2]\nx = 1", "server2", "unknown key");
}

#[test]
fn all_problems_are_reported_at_once() {
    let problems = load(
        r#"
[oidc]
remote = "maybe"
max_clock_skew = "soon"
[identity_providers.kc]
type = "oidc"
name = "KC"
issuer = "not a url"
client_id = "ICM"
client_secret = "s"
[organizations.Ops]
external_name = "Ops"
identity_providers = ["kc", "nope"]
"#,
    )
    .unwrap_err();
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "oidc.remote",
        "oidc.max_clock_skew",
        "identity_providers.kc.issuer",
        "organizations.Ops.identity_providers[1]",
    ] {
        assert!(keys.contains(&key), "{key} missing in {keys:?}");
    }
}

#[test]
fn organization_naming_an_undefined_idp() {
    assert_problem(
        "[identity_providers.oidc_kc_1]\ntype = \"local\"\nname = \"x\"\n[organizations.A]\nexternal_name = \"A\"\nidentity_providers = [\"oidc_kc_2x\"]",
        "organizations.A.identity_providers[0]",
        "\"oidc_kc_2x\" is not defined",
    );
}

#[test]
fn oidc_idp_needs_issuer_client_id_and_secret() {
    let problems = load("[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"").unwrap_err();
    for field in ["issuer", "client_id", "client_secret"] {
        let key = format!("identity_providers.kc.{field}");
        assert!(
            problems
                .iter()
                .any(|p| p.key == key && p.message.contains("missing")),
            "{key}: {problems:?}"
        );
    }
}

#[test]
fn issuer_must_be_a_url() {
    assert_problem(
        "[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"\nissuer = \"keycloak/realms/x\"\nclient_id = \"a\"\nclient_secret = \"b\"",
        "identity_providers.kc.issuer",
        "not a URL",
    );
}

#[test]
fn client_secret_expire_at_must_be_rfc3339() {
    assert_problem(
        "[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"\nissuer = \"https://idp.example\"\nclient_id = \"a\"\nclient_secret = \"b\"\nclient_secret_expire_at = \"31.12.2024\"",
        "identity_providers.kc.client_secret_expire_at",
        "not an RFC 3339 timestamp",
    );
}

#[test]
fn session_key_must_be_32_bytes_of_base64() {
    let bad_len =
        "[server]\nupstream = \"http://127.0.0.1:9000\"\n[session]\nkeys = [\"c2hvcnQ=\"]";
    let problems = validate(bad_len, Path::new("t.toml")).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "session.keys[0]" && p.message.contains("got 5 bytes")),
        "{problems:?}"
    );
    let not_b64 = "[server]\nupstream = \"http://127.0.0.1:9000\"\n[session]\nkeys = [\"***\"]";
    let problems = validate(not_b64, Path::new("t.toml")).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "session.keys[0]" && p.message.contains("not base64")),
        "{problems:?}"
    );
    let missing = "[server]\nupstream = \"http://127.0.0.1:9000\"";
    let problems = validate(missing, Path::new("t.toml")).unwrap_err();
    assert!(
        problems.iter().any(|p| p.key == "session.keys"),
        "{problems:?}"
    );
}

#[test]
fn bad_enum_values() {
    assert_problem(
        "[oidc]\nremote = \"yes\"",
        "oidc.remote",
        "not one of \"supported\", \"unsupported\"",
    );
    assert_problem(
        "[organizations.A]\nexternal_name = \"A\"\nlogout_policy = \"GLOBAL\"",
        "organizations.A.logout_policy",
        "\"GLOBAL\" is not one of",
    );
    assert_problem(
        "[organizations.A]\nexternal_name = \"A\"\nself_administration_policy = [\"CREATE\", \"DELETE\"]",
        "organizations.A.self_administration_policy[1]",
        "\"DELETE\" is not one of",
    );
    assert_problem(
        "[[routes]]\npath_prefix = \"/\"\nauth = \"sometimes\"",
        "routes[0].auth",
        "\"sometimes\" is not one of",
    );
    assert_problem(
        "[identity_providers.x]\ntype = \"saml\"\nname = \"X\"",
        "identity_providers.x.type",
        "\"saml\" is not one of",
    );
}

#[test]
fn self_administration_policy_semantics() {
    let config = load(
        r#"
[organizations.Default]
external_name = "Default"
[organizations.UpdateOnly]
external_name = "U"
self_administration_policy = "UPDATE"
[organizations.NoneWins]
external_name = "N"
self_administration_policy = ["CREATE", "NONE", "UPDATE"]
[organizations.Empty]
external_name = "E"
self_administration_policy = []
[[routes]]
path_prefix = "/"
auth = "public"
"#,
    )
    .unwrap();
    let policy = |k: &str| config.organizations[k].self_administration;
    assert_eq!(
        policy("Default"),
        SelfAdministration {
            create: true,
            update: true
        }
    );
    assert_eq!(
        policy("UpdateOnly"),
        SelfAdministration {
            create: false,
            update: true
        }
    );
    assert_eq!(
        policy("NoneWins"),
        SelfAdministration {
            create: false,
            update: false
        }
    );
    assert_eq!(
        policy("Empty"),
        SelfAdministration {
            create: true,
            update: true
        }
    );
    assert_eq!(policy("NoneWins").header_value(), "NONE");
}

#[test]
fn remote_unsupported_offers_only_local_idps() {
    let idps = r#"
[identity_providers.kc]
type = "oidc"
name = "KC"
issuer = "https://idp.example/realms/x"
client_id = "a"
client_secret = "b"
[identity_providers.localICM]
type = "local"
name = "Shop account"
[organizations.A]
external_name = "A"
identity_providers = "kc, localICM"
[[routes]]
path_prefix = "/"
auth = "optional"
"#;
    let config = load(idps).unwrap();
    assert_eq!(
        config.organizations["A"].identity_providers,
        vec!["localICM"]
    );
    let config = load(&format!("[oidc]\nremote = \"supported\"\n{idps}")).unwrap();
    assert_eq!(
        config.organizations["A"].identity_providers,
        vec!["kc", "localICM"]
    );
}

#[test]
fn organization_without_idps_defaults_to_local() {
    let config = load("[organizations.A]\nexternal_name = \"A\"\n[[routes]]\npath_prefix = \"/\"\nauth = \"optional\"").unwrap();
    assert_eq!(config.organizations["A"].identity_providers, vec!["local"]);
    assert_eq!(
        config.organizations["A"].logout_policy,
        LogoutPolicy::External
    );
}

#[test]
fn duplicate_routes() {
    assert_problem(
        "[[routes]]\npath_prefix = \"/a\"\n[[routes]]\npath_prefix = \"/a\"",
        "routes[1].path_prefix",
        "duplicate of routes[0]",
    );
}

#[test]
fn unreachable_routes() {
    assert_problem(
        "[[routes]]\npath_prefix = \"/\"\n[[routes]]\npath_prefix = \"/static/\"\nauth = \"public\"",
        "routes[1].path_prefix",
        "unreachable",
    );
    // A host-specific route is not shadowed by a prefix on another host.
    load("[[routes]]\nhost = \"a.example\"\npath_prefix = \"/\"\n[[routes]]\nhost = \"b.example\"\npath_prefix = \"/x\"").unwrap();
}

/// Issue 26: route hosts are stored canonical (as requests' hosts are), and a host that
/// no request could have is named.
#[test]
fn route_hosts_are_canonical() {
    let config = load("[[routes]]\nhost = \"Admin.Shop.Test.\"\npath_prefix = \"/\"").unwrap();
    assert_eq!(config.routes[0].host.as_deref(), Some("admin.shop.test"));
    for bad in [
        "admin.shop.test:8443",
        "*.shop.test",
        "admin..shop.test",
        "admin shop",
    ] {
        assert_problem(
            &format!("[[routes]]\nhost = \"{bad}\"\npath_prefix = \"/\""),
            "routes[0].host",
            bad,
        );
    }
}

/// Issue 27: refresh tokens are asked for the way each IdP needs; `auto` reads the issuer.
#[test]
fn offline_access_per_identity_provider() {
    let idp = |issuer: &str, extra: &str| {
        format!("[identity_providers.x]\ntype = \"oidc\"\nname = \"X\"\nissuer = \"{issuer}\"\nclient_id = \"c\"\nclient_secret = \"s\"\n{extra}")
    };
    let resolved = |issuer: &str, extra: &str| {
        let config = load(&idp(issuer, extra)).unwrap();
        config.identity_providers["x"]
            .oidc()
            .unwrap()
            .offline_access
    };
    let azure = "https://login.microsoftonline.com/tenant/v2.0";
    assert_eq!(resolved(azure, ""), OfflineAccess::Scope);
    assert_eq!(
        resolved("https://shop.eu.auth0.com/", ""),
        OfflineAccess::Scope
    );
    assert_eq!(
        resolved("https://shop.okta.com/oauth2/default", ""),
        OfflineAccess::Scope
    );
    assert_eq!(
        resolved("https://kc.shop.test/realms/shop", ""),
        OfflineAccess::Never
    );
    assert_eq!(resolved("https://op.example", ""), OfflineAccess::Never);
    assert_eq!(
        resolved("https://evil-okta.com.example", ""),
        OfflineAccess::Never
    );
    assert_eq!(
        resolved(azure, "offline_access = \"never\""),
        OfflineAccess::Never
    );
    assert_eq!(
        resolved("https://op.example", "offline_access = \"consent\""),
        OfflineAccess::Consent
    );
    assert_problem(
        &idp("https://op.example", "offline_access = \"always\""),
        "identity_providers.x.offline_access",
        "\"auto\", \"scope\", \"consent\", \"never\"",
    );
}

/// Issue 27: `ca_file` is read when the config is; a missing or empty file is named.
#[test]
fn ca_file_must_be_a_pem_bundle() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").unwrap();
    for (file, needle) in [
        (dir.path().join("missing.pem"), "cannot read"),
        (empty, "holds no PEM certificate"),
    ] {
        assert_problem(
            &format!("[identity_providers.x]\ntype = \"oidc\"\nname = \"X\"\nissuer = \"https://op.example\"\nclient_id = \"c\"\nclient_secret = \"s\"\nca_file = \"{}\"", file.display()),
            "identity_providers.x.ca_file",
            needle,
        );
    }
}

#[test]
fn route_organization_must_exist() {
    assert_problem(
        "[organizations.Operations]\nexternal_name = \"Ops\"\n[[routes]]\npath_prefix = \"/\"\norganization = \"Operation\"",
        "routes[0].organization",
        "did you mean \"Operations\"?",
    );
}

#[test]
fn listen_addresses_must_parse() {
    let text = minimal().replace("127.0.0.1:8080", "localhost:80:80");
    let problems = validate(
        &format!("{text}\n[admin]\nlisten = \"9090\""),
        Path::new("t.toml"),
    )
    .unwrap_err();
    assert!(
        problems.iter().any(|p| p.key == "server.listen"),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.key == "admin.listen"),
        "{problems:?}"
    );
}

#[test]
fn durations_in_all_three_forms() {
    let config = load("[oidc]\njwk_cache_lifetime = 3600000\nmax_clock_skew = \"PT2M\"\nmin_access_token_lifetime_left = \"90s\"").unwrap();
    assert_eq!(config.oidc.jwk_cache_lifetime, Duration::from_secs(3600));
    assert_eq!(config.oidc.max_clock_skew, Duration::from_secs(120));
    assert_eq!(
        config.oidc.min_access_token_lifetime_left,
        Duration::from_secs(90)
    );
    assert_problem(
        "[oidc]\nmax_clock_skew = \"a minute\"",
        "oidc.max_clock_skew",
        "is not a duration",
    );
}

#[test]
fn secrets_from_env_and_file() {
    std::env::set_var("SSO_SIDECAR_VALIDATE_TEST_SECRET", "from-env");
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{KEY}\n")).unwrap();
    let text = format!(
        r#"
[server]
upstream = "http://127.0.0.1:9000"
public_url = "https://shop.example.com"
[oidc]
remote = "supported"
[session]
keys = ["file:{}"]
[identity_providers.kc]
type = "oidc"
name = "KC"
issuer = "https://idp.example"
client_id = "a"
client_secret = "env:SSO_SIDECAR_VALIDATE_TEST_SECRET"
"#,
        key_file.display()
    );
    let config = validate(&text, Path::new("t.toml")).unwrap();
    assert_eq!(
        config.identity_providers["kc"]
            .oidc()
            .unwrap()
            .client_secret
            .expose(),
        "from-env"
    );
    assert_eq!(config.session.keys.len(), 1);

    let missing = text.replace(
        "SSO_SIDECAR_VALIDATE_TEST_SECRET",
        "SSO_SIDECAR_VALIDATE_TEST_UNSET",
    );
    let problems = validate(&missing, Path::new("t.toml")).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "identity_providers.kc.client_secret"
                && p.message.contains("is not set")),
        "{problems:?}"
    );
}

#[test]
fn public_url_required_for_oidc() {
    let text = r#"
[server]
upstream = "http://127.0.0.1:9000"
[oidc]
remote = "supported"
[session]
keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
[identity_providers.kc]
type = "oidc"
name = "KC"
issuer = "https://idp.example"
client_id = "a"
client_secret = "b"
"#;
    let problems = validate(text, Path::new("t.toml")).unwrap_err();
    assert!(
        problems.iter().any(|p| p.key == "server.public_url"),
        "{problems:?}"
    );
}

#[test]
fn type_errors_name_the_key() {
    let problems = load("[oidc]\naccept_unsigned_tokens = \"yes\"").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "oidc.accept_unsigned_tokens");
    assert!(problems[0].message.contains("line"), "{problems:?}");
}

#[test]
fn syntax_errors_give_a_line() {
    let problems = validate("[server\nlisten = 1", Path::new("t.toml")).unwrap_err();
    assert!(problems[0].message.contains("line 1"), "{problems:?}");
}

#[test]
fn upstream_must_be_an_http_origin() {
    let text = minimal().replace("http://127.0.0.1:9000", "ftp://127.0.0.1:9000");
    let problems = validate(&text, Path::new("t.toml")).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "server.upstream" && p.message.contains("http or https")),
        "{problems:?}"
    );
}

#[test]
fn trusted_proxies_accept_addresses_and_ranges() {
    let text = minimal().replace(
        "public_url",
        "trusted_proxies = [\"10.0.0.0/8\", \"192.168.1.1\", \"::1\"]\npublic_url",
    );
    let config = validate(&text, Path::new("t.toml")).unwrap();
    assert_eq!(config.server.trusted_proxies.len(), 3);
    let text = minimal().replace(
        "public_url",
        "trusted_proxies = [\"10.0.0.0/33\"]\npublic_url",
    );
    let problems = validate(&text, Path::new("t.toml")).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "server.trusted_proxies[0]"),
        "{problems:?}"
    );
}

#[test]
fn a_broken_idp_is_reported_once() {
    let problems = load(
        "[oidc]\nremote = \"supported\"\n[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"\nissuer = \"https://idp.example\"\nclient_id = \"a\"\nclient_secret = \"env:SSO_SIDECAR_VALIDATE_UNSET_2\"\n[organizations.A]\nexternal_name = \"A\"\nidentity_providers = [\"kc\"]",
    )
    .unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert_eq!(problems[0].key, "identity_providers.kc.client_secret");
}

#[test]
fn trust_boundary_headers_have_safe_defaults() {
    let config = load("").unwrap();
    assert_eq!(
        config.headers.strip_untrusted,
        DEFAULT_STRIP_UNTRUSTED.map(str::to_owned).to_vec()
    );
    let assertion = config.headers.assertion.expect("on by default");
    assert!(assertion.keys.is_empty() && assertion.audience.is_none());
    let off = load("[headers]\nassertion = false").unwrap();
    assert!(off.headers.assertion.is_none());
}

#[test]
fn strip_untrusted_must_name_headers() {
    assert_problem(
        "[headers]\nstrip_untrusted = [\"X-Real-IP\", \"not a header\"]",
        "headers.strip_untrusted[1]",
        "is not a header name",
    );
}

#[test]
fn assertion_keys_must_be_p256_pkcs8() {
    let problems = assert_problem(
        "[headers]\nassertion_keys = [\"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\"]",
        "headers.assertion_keys[0]",
        "PKCS#8 PEM P-256",
    );
    assert!(
        problems.iter().all(|p| !p.message.contains("AAAA")),
        "the key is never printed"
    );
    assert_problem(
        "[headers]\nassertion_keys = [\"env:SSO_TEST_NO_SUCH_VARIABLE\"]",
        "headers.assertion_keys[0]",
        "is not set",
    );
}

#[test]
fn generated_assertion_key_with_redis_is_warned_about() {
    let config = load("[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"").unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("headers.assertion_keys")),
        "{:?}",
        config.warnings
    );
    assert!(load("").unwrap().warnings.is_empty());
}

const KC: &str = "[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"\nissuer = \"https://idp.example\"\nclient_id = \"a\"\nclient_secret = \"b\"\n[oidc]\nremote = \"supported\"\n";

#[test]
fn membership_and_route_rules_in_every_form() {
    let config = load(&format!(
        "{KC}
[organizations.Ops]
external_name = \"Operations\"
identity_providers = [\"kc\"]
members = [
  {{ claim = \"email\", ends_with = [\"@intershop.com\"] }},
  {{ claim = \"realm_access.roles\", any_of = [\"backoffice\"] }},
]
[[routes]]
path_prefix = \"/admin/\"
allow = [{{ claim = \"groups\", any_of = [\"admins\", \"ops\"] }}]
[[routes]]
path_prefix = \"/\"
auth = \"public\"
"
    ))
    .unwrap();
    let members = &config.organizations["Ops"].members;
    assert_eq!(members.len(), 2);
    assert_eq!(members[1].claim, "realm_access.roles");
    assert_eq!(
        members[0].test,
        ClaimTest::EndsWith(vec!["@intershop.com".into()])
    );
    assert_eq!(
        config.routes[0].allow[0].test,
        ClaimTest::AnyOf(vec!["admins".into(), "ops".into()])
    );
    let idp = config.identity_providers["kc"].oidc().unwrap();
    assert_eq!(idp.groups_claim, "groups");
    assert_eq!(config.headers.max_groups, 100);
}

#[test]
fn rule_mistakes_name_their_key() {
    let org = |rules: &str| {
        format!("{KC}[organizations.Ops]\nexternal_name = \"Ops\"\nidentity_providers = [\"kc\"]\nmembers = [{rules}]\n")
    };
    assert_problem(
        &org("{ any_of = [\"x\"] }"),
        "organizations.Ops.members[0].claim",
        "missing",
    );
    assert_problem(
        &org("{ claim = \"a..b\", any_of = [\"x\"] }"),
        "organizations.Ops.members[0].claim",
        "dotted path",
    );
    assert_problem(
        &org("{ claim = \"g\" }"),
        "organizations.Ops.members[0]",
        "needs any_of",
    );
    assert_problem(
        &org("{ claim = \"g\", any_of = [\"x\"], ends_with = [\"y\"] }"),
        "organizations.Ops.members[0]",
        "both any_of and ends_with",
    );
    assert_problem(
        &org("{ claim = \"g\", any_of = [] }"),
        "organizations.Ops.members[0].any_of",
        "at least one",
    );
    assert_problem(
        &org("{ claim = \"g\", ends_with = [\"\"] }"),
        "organizations.Ops.members[0].ends_with",
        "none of them empty",
    );
    assert_problem(
        &org("{ claim = \"g\", anyof = [\"x\"] }"),
        "organizations.Ops.members[0].anyof",
        "any_of",
    );
    assert_problem(
        "[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\nallow = [{ claim = \"g\", any_of = [\"x\"] }]",
        "routes[0].allow",
        "needs auth",
    );
    assert_problem(
        &format!("{KC}[headers]\nmax_groups = -1"),
        "headers.max_groups",
        "between",
    );
    assert_problem(
        "[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"\nissuer = \"https://idp.example\"\nclient_id = \"a\"\nclient_secret = \"b\"\ngroups_claim = \".x\"",
        "identity_providers.kc.groups_claim",
        "dotted path",
    );
}

#[test]
fn an_idp_shared_by_organizations_without_rules_is_warned_about() {
    let two = format!(
        "{KC}[organizations.Ops]\nexternal_name = \"Ops\"\nidentity_providers = [\"kc\"]\nmembers = [{{ claim = \"email\", ends_with = [\"@ops.example\"] }}]\n[organizations.Shop]\nexternal_name = \"Shop\"\nidentity_providers = [\"kc\"]\n"
    );
    let config = load(&two).unwrap();
    assert!(
        config
            .warnings
            .iter()
            .any(|w| w.contains("organizations.Shop.members is not set")
                && w.contains("kc also serves Ops")),
        "{:?}",
        config.warnings
    );
    assert!(!config
        .warnings
        .iter()
        .any(|w| w.contains("organizations.Ops.members")));
}

#[test]
fn icm_unsupported_cases_are_refused_or_fall_back() {
    assert_problem(
        "[identity_providers.ad]\ntype = \"oidc\"\nname = \"AD\"\nissuer = \"https://sts.windows.net/43566bc5-e954-4049-909f-76ce0392de31/\"\nclient_id = \"a\"\nclient_secret = \"b\"",
        "identity_providers.ad.issuer",
        "Azure AD v1.0",
    );
    let config = load(
        "[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"\nissuer = \"https://idp.example\"\nclient_id = \"a\"\nclient_secret = \"b\"\n[organizations.Ops]\nexternal_name = \"Ops\"\nidentity_providers = [\"kc\"]\nlocal_login_url = \"/login\"\n[[routes]]\npath_prefix = \"/\"\nauth = \"optional\"",
    )
    .unwrap();
    assert_eq!(config.organizations["Ops"].identity_providers, ["local"]);
    assert!(config
        .warnings
        .iter()
        .any(|w| w.contains("sign in locally")));
}

#[test]
fn client_secrets_are_warned_about_ahead_of_expiry() {
    let soon = (chrono::Utc::now() + chrono::Duration::days(10)).to_rfc3339();
    let later = (chrono::Utc::now() + chrono::Duration::days(90)).to_rfc3339();
    let idp = |at: &str, extra: &str| {
        format!("{extra}[identity_providers.kc]\ntype = \"oidc\"\nname = \"KC\"\nissuer = \"https://idp.example\"\nclient_id = \"a\"\nclient_secret = \"b\"\nclient_secret_expire_at = \"{at}\"")
    };
    let warned = |text: &str| {
        load(text)
            .unwrap()
            .warnings
            .iter()
            .any(|w| w.contains("client_secret_expire_at: the client secret expires on"))
    };
    assert!(warned(&idp(&soon, "")));
    assert!(!warned(&idp(&later, "")));
    assert!(warned(&idp(
        &later,
        "[oidc]\nsecret_expiry_warning = \"120d\"\n"
    )));
}

#[test]
fn login_targets_behind_required_routes_are_loops() {
    let org = "[identity_providers.shop]\ntype = \"local\"\nname = \"Shop\"\n[organizations.Ops]\nexternal_name = \"Ops\"\nidentity_providers = [\"shop\"]\nlocal_login_url = \"/backoffice/login?return={rd}\"\npost_logout_url = \"/bye\"\n";
    let problems = assert_problem(
        &format!("{org}[[routes]]\npath_prefix = \"/backoffice/\"\nauth = \"required\""),
        "organizations.Ops.local_login_url",
        "optional",
    );
    assert!(problems
        .iter()
        .any(|p| p.key == "organizations.Ops.post_logout_url"));
    assert!(load(&format!(
        "{org}[[routes]]\npath_prefix = \"/backoffice/\"\nauth = \"optional\"\n[[routes]]\npath_prefix = \"/bye\"\nauth = \"public\""
    ))
    .is_ok());
}

/// An operator's config with one mistake of each kind: `check` names all of them in one
/// run. A wrong type does not stop the reading, a route's first bad field does not hide the
/// others, and a cross-check (`server.public_url`) does not wait for the rest to be clean.
#[test]
fn one_mistake_of_each_kind_all_reported_in_one_run() {
    let text = r#"
[server]
upstream = "http://127.0.0.1:9000"
threads = "four"
[oidc]
remote = "supported"
max_clock_skew = "soon"
[session]
keys = ["MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="]
secure = "yes"
cookie_nam = "x"
[log]
format = "xml"
[limits]
max_headers = 5
[identity_providers.kc]
type = "oidc"
name = "KC"
issuer = "not a url"
client_id = "a"
client_secret = "b"
[identity_providers.other]
type = "oidc"
name = "Other"
issuer = "https://idp.example"
client_id = "a"
client_secret = "b"
[organizations.Ops]
external_name = "Ops"
identity_providers = ["other", "nope"]
[[routes]]
path_prefix = "shop"
auth = "sometimes"
organization = "Nobody"
[[routes]]
path_prefix = "/api"
auth = "api"
preflight = 7
"#;
    let problems = validate(text, Path::new("t.toml")).unwrap_err();
    let keys: Vec<_> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "server.threads",
        "session.secure",
        "routes[1].preflight",
        "oidc.max_clock_skew",
        "session.cookie_nam",
        "log.format",
        "limits.max_headers",
        "identity_providers.kc.issuer",
        "organizations.Ops.identity_providers[1]",
        "routes[0].path_prefix",
        "routes[0].auth",
        "routes[0].organization",
        "server.public_url",
    ] {
        assert!(keys.contains(&key), "{key} missing in {problems:#?}");
    }
    let secure = problems.iter().find(|p| p.key == "session.secure").unwrap();
    assert!(secure.message.contains("line 10"), "{secure:?}");
}

#[test]
fn step_up_rules_are_tokens_on_routes_that_sign_in() {
    let ok = load("[[routes]]\npath_prefix = \"/checkout\"\nacr_values = [\"urn:shop:mfa\"]\nmax_age = \"10m\"")
        .unwrap();
    let step_up = ok.routes[0].step_up.as_ref().unwrap();
    assert_eq!(step_up.acr_values, ["urn:shop:mfa"]);
    assert_eq!(step_up.max_age, Some(Duration::from_secs(600)));
    assert_problem(
        "[[routes]]\npath_prefix = \"/\"\nauth = \"public\"\nmax_age = \"1m\"",
        "routes[0].acr_values",
        "never asks anyone to sign in",
    );
    // The values go into a quoted header parameter and a query as they are.
    assert_problem(
        "[[routes]]\npath_prefix = \"/\"\nacr_values = [\"gold \\\"x\\\"\"]",
        "routes[0].acr_values",
        "is not an acr value",
    );
    assert_problem(
        "[[routes]]\npath_prefix = \"/\"\nmax_age = \"soon\"",
        "routes[0].max_age",
        "",
    );
}

#[test]
fn store_path_is_a_file_and_only_without_redis() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state.redb");
    let ok = load(&format!("[store]\npath = \"{}\"", file.display())).unwrap();
    assert_eq!(ok.store.path.as_deref(), Some(file.as_path()));
    assert_problem("[store]\npath = \"\"", "store.path", "is empty");
    assert_problem(
        "[store]\nkind = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\npath = \"state.redb\"",
        "store.path",
        "only with store.kind",
    );
    // With remote sign-ins and no Redis, check says a restart would forget logouts.
    let remote = load(KC).unwrap();
    assert!(
        remote
            .warnings
            .iter()
            .any(|w| w.contains("store.path is not set")),
        "{:?}",
        remote.warnings
    );
}

#[test]
fn log_audit_is_off_stdout_or_a_file_in_a_folder_that_exists() {
    assert_eq!(load("").unwrap().log.audit, AuditLog::Off);
    let stdout = load("[log]\naudit = \"stdout\"").unwrap();
    assert_eq!(stdout.log.audit, AuditLog::Stdout);
    let folder = tempfile::tempdir().unwrap();
    let file = folder.path().join("audit.jsonl");
    let in_file = load(&format!("[log]\naudit = \"{}\"", file.display())).unwrap();
    assert_eq!(in_file.log.audit, AuditLog::File(file));
    assert_problem("[log]\naudit = \"\"", "log.audit", "is empty");
    assert_problem(
        "[log]\naudit = \"/no/such/folder/audit.jsonl\"",
        "log.audit",
        "its folder does not exist",
    );
}

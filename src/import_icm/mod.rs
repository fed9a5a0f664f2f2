//! `sso-sidecar import-icm`: ICM SSO properties in, equivalent sidecar TOML out.

mod properties;

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

/// What the import produced: the TOML, and what the user should look at.
pub struct Imported {
    pub toml: String,
    pub warnings: Vec<String>,
}

#[derive(Default)]
struct Idp {
    kind: Option<String>,
    name: Option<String>,
    configuration: Option<(usize, String)>,
}

#[derive(Default)]
struct Org {
    external_name: Option<String>,
    identity_providers: Option<String>,
    self_administration: Option<String>,
    logout_policy: Option<String>,
}

/// ICM global properties and the `[oidc]` keys they become.
const OIDC_KEYS: [(&str, &str); 6] = [
    ("intershop.identityProvider.remote", "remote"),
    (
        "intershop.authentication.oidc.jwkCacheLifetime",
        "jwk_cache_lifetime",
    ),
    (
        "intershop.authentication.oidc.maxClockSkew",
        "max_clock_skew",
    ),
    (
        "intershop.authentication.oidc.minAccessTokenLifeTimeLeft",
        "min_access_token_lifetime_left",
    ),
    (
        "intershop.authentication.oidc.stateCookieName",
        "state_cookie_name",
    ),
    (
        "intershop.authentication.acceptUnsignedTokens",
        "accept_unsigned_tokens",
    ),
];

pub fn import(text: &str, source: &str, keep_secrets: bool) -> Result<Imported, String> {
    let mut warnings = Vec::new();
    let mut oidc: Vec<(&str, String)> = Vec::new();
    let mut idps: BTreeMap<String, Idp> = BTreeMap::new();
    let mut orgs: BTreeMap<String, Org> = BTreeMap::new();

    for (line, key, value) in properties::parse(text) {
        if let Some((_, toml_key)) = OIDC_KEYS.iter().find(|(icm, _)| *icm == key) {
            oidc.push((toml_key, value));
            continue;
        }
        let idp_rest = key
            .strip_prefix("intershop.authentication.identityprovider.")
            .or_else(|| key.strip_prefix("intershop.authentication.identityproviders."));
        if let Some((idp_key, field)) = idp_rest.and_then(|rest| rest.rsplit_once('.')) {
            let idp = idps.entry(idp_key.to_owned()).or_default();
            match field {
                "type" => idp.kind = Some(value),
                "name" => idp.name = Some(value),
                "configuration" => idp.configuration = Some((line, value)),
                _ => warnings.push(format!(
                    "{source}:{line}: {key}: unknown identity provider property, ignored"
                )),
            }
            continue;
        }
        if let Some((org_key, field)) = key
            .strip_prefix("intershop.authentication.")
            .and_then(|rest| rest.rsplit_once('.'))
        {
            let slot = match field {
                "externalname" => {
                    Some(&mut orgs.entry(org_key.to_owned()).or_default().external_name)
                }
                "identityproviders" => Some(
                    &mut orgs
                        .entry(org_key.to_owned())
                        .or_default()
                        .identity_providers,
                ),
                "selfAdministrationPolicy" => Some(
                    &mut orgs
                        .entry(org_key.to_owned())
                        .or_default()
                        .self_administration,
                ),
                "logoutPolicy" => {
                    Some(&mut orgs.entry(org_key.to_owned()).or_default().logout_policy)
                }
                _ => None,
            };
            if let Some(slot) = slot {
                *slot = Some(value);
                continue;
            }
        }
        if key.starts_with("intershop.") {
            warnings.push(format!(
                "{source}:{line}: {key}: not an SSO property the sidecar knows, ignored"
            ));
        } else {
            warnings.push(format!(
                "{source}:{line}: {key}: not an intershop.* property, ignored"
            ));
        }
    }

    let mut env_secrets = vec![(
        "SSO_SESSION_KEY".to_owned(),
        "session key (sso-sidecar keygen)".to_owned(),
    )];
    let mut out = String::new();
    let mut body = String::new();
    write_oidc(&mut body, &oidc);
    for (key, idp) in &idps {
        write_idp(
            &mut body,
            source,
            key,
            idp,
            keep_secrets,
            &mut env_secrets,
            &mut warnings,
        )?;
    }
    let is_local = |key: &str| {
        idps.get(key)
            .is_none_or(|idp| idp.kind.as_deref() != Some("oidc"))
    };
    let mut any_local = false;
    for (key, org) in &orgs {
        let offers_local = org.identity_providers.as_deref().is_some_and(|list| {
            list.split(',')
                .map(str::trim)
                .any(|k| !k.is_empty() && is_local(k))
        });
        any_local |= offers_local;
        write_org(&mut body, key, org, offers_local);
    }
    write_routes(&mut body, &orgs, any_local);

    let _ = writeln!(out, "# Imported from {source} by `sso-sidecar import-icm`.");
    let _ = writeln!(
        out,
        "# Review [server] and [[routes]]: ICM properties do not describe them."
    );
    if keep_secrets {
        let _ = writeln!(
            out,
            "# Client secrets were kept as written in the properties (--keep-secrets)."
        );
    }
    let _ = writeln!(
        out,
        "# Set these environment variables before `sso-sidecar check` / `run`:"
    );
    for (name, what) in &env_secrets {
        let _ = writeln!(out, "#   {name}  ({what})");
    }
    out.push_str(
        "\n[server]\nlisten = \"0.0.0.0:8080\"\nupstream = \"http://127.0.0.1:9000\"    # the ICM web adapter\npublic_url = \"https://shop.example.com\"  # the shop's public origin\n\n[admin]\nlisten = \"127.0.0.1:9090\"\n\n[session]\nkeys = [\"env:SSO_SESSION_KEY\"]\n",
    );
    out.push_str(&body);
    Ok(Imported {
        toml: out,
        warnings,
    })
}

fn quoted(text: &str) -> String {
    toml::Value::String(text.to_owned()).to_string()
}

fn write_oidc(out: &mut String, oidc: &[(&str, String)]) {
    if oidc.is_empty() {
        return;
    }
    out.push_str("\n[oidc]\n");
    for (key, value) in oidc {
        let rendered = match *key {
            // Durations stay as ICM wrote them: milliseconds or ISO-8601.
            "jwk_cache_lifetime" | "max_clock_skew" | "min_access_token_lifetime_left" => value
                .trim()
                .parse::<u64>()
                .map_or_else(|_| quoted(value.trim()), |ms| ms.to_string()),
            "accept_unsigned_tokens" => value.trim().eq_ignore_ascii_case("true").to_string(),
            _ => quoted(value.trim()),
        };
        let _ = writeln!(out, "{key} = {rendered}");
    }
}

fn write_idp(
    out: &mut String,
    source: &str,
    key: &str,
    idp: &Idp,
    keep_secrets: bool,
    env_secrets: &mut Vec<(String, String)>,
    warnings: &mut Vec<String>,
) -> Result<(), String> {
    let _ = writeln!(out, "\n[identity_providers.{}]", table_key(key));
    let kind = idp.kind.as_deref().unwrap_or("local");
    if idp.kind.is_none() {
        warnings.push(format!(
            "{source}: identity provider {key} has no type; assumed local"
        ));
    }
    let _ = writeln!(out, "type = {}", quoted(kind));
    let _ = writeln!(out, "name = {}", quoted(idp.name.as_deref().unwrap_or(key)));
    if kind != "oidc" {
        return Ok(());
    }
    let Some((line, json)) = &idp.configuration else {
        warnings.push(format!(
            "{source}: identity provider {key} has no configuration"
        ));
        return Ok(());
    };
    let config: serde_json::Map<String, Value> = serde_json::from_str(json).map_err(|e| {
        format!("{source}:{line}: identity provider {key}: configuration is not JSON: {e}")
    })?;
    let text = |name: &str| config.get(name).and_then(Value::as_str);
    for field in ["issuer", "client_id"] {
        if let Some(value) = text(field) {
            let _ = writeln!(out, "{field} = {}", quoted(value));
        }
    }
    if let Some(secret) = text("client_secret") {
        if keep_secrets {
            let _ = writeln!(out, "client_secret = {}", quoted(secret));
        } else {
            let var = format!("{}_CLIENT_SECRET", env_name(key));
            let _ = writeln!(out, "client_secret = {}", quoted(&format!("env:{var}")));
            env_secrets.push((var, format!("client secret of {key}")));
        }
    }
    if let Some(expire) = text("client_secret_expire_at") {
        let _ = writeln!(out, "client_secret_expire_at = {}", quoted(expire));
    }
    if let Some(Value::Array(scopes)) = config.get("additionalCustomScopeValues") {
        let list: Vec<String> = scopes
            .iter()
            .filter_map(Value::as_str)
            .map(quoted)
            .collect();
        let _ = writeln!(out, "additional_scopes = [{}]", list.join(", "));
    }
    for unknown in config.keys().filter(|k| {
        ![
            "issuer",
            "client_id",
            "client_secret",
            "client_secret_expire_at",
            "additionalCustomScopeValues",
        ]
        .contains(&k.as_str())
    }) {
        warnings.push(format!(
            "{source}:{line}: identity provider {key}: configuration attribute {unknown} ignored"
        ));
    }
    Ok(())
}

/// ICM's own back-office login: where `local` users sign in.
const ICM_BACK_OFFICE_LOGIN: &str = "/INTERSHOP/web/WFS/SLDSystem/en_US/-/-/ViewApplication-Login";

fn write_org(out: &mut String, key: &str, org: &Org, offers_local: bool) {
    let _ = writeln!(out, "\n[organizations.{}]", table_key(key));
    let _ = writeln!(
        out,
        "external_name = {}",
        quoted(org.external_name.as_deref().unwrap_or(key))
    );
    let list = |text: &str| {
        let items: Vec<String> = text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(quoted)
            .collect();
        format!("[{}]", items.join(", "))
    };
    if let Some(idps) = &org.identity_providers {
        let _ = writeln!(out, "identity_providers = {}", list(idps));
    }
    if let Some(policy) = &org.self_administration {
        let _ = writeln!(out, "self_administration_policy = {}", list(policy));
    }
    if let Some(policy) = &org.logout_policy {
        let _ = writeln!(out, "logout_policy = {}", quoted(policy.trim()));
    }
    if offers_local {
        let _ = writeln!(out, "local_login_url = {}", quoted(ICM_BACK_OFFICE_LOGIN));
    }
}

/// ICM's usual URL layout: static content public; the back office `optional` when local
/// users sign in there (ICM's own login must be reachable without a session, and ICM
/// itself guards its pages for them), else `required` for Operations; the rest behind
/// sign-in.
fn write_routes(out: &mut String, orgs: &BTreeMap<String, Org>, any_local: bool) {
    out.push_str("\n[[routes]]\npath_prefix = \"/INTERSHOP/static/\"\nauth = \"public\"\n");
    let pin = if orgs.contains_key("Operations") {
        "organization = \"Operations\"\n"
    } else {
        ""
    };
    if any_local {
        let _ = write!(
            out,
            "\n# SSO users arrive with identity headers, local users are ICM's own.\n[[routes]]\npath_prefix = \"/INTERSHOP/web/WFS/SLDSystem\"\nauth = \"optional\"\n{pin}"
        );
    } else if !pin.is_empty() {
        let _ = write!(
            out,
            "\n[[routes]]\npath_prefix = \"/INTERSHOP/web/WFS/SLDSystem\"\nauth = \"required\"\n{pin}"
        );
    }
    out.push_str("\n[[routes]]\npath_prefix = \"/\"\nauth = \"required\"\n");
}

/// Keys with characters TOML bare keys do not allow are quoted.
fn table_key(key: &str) -> String {
    if key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        key.to_owned()
    } else {
        quoted(key)
    }
}

fn env_name(key: &str) -> String {
    key.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect()
}

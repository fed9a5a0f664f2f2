//! The config file as written: every field optional and loosely typed, so that validation
//! can report all problems at once instead of stopping at the first type error.

use std::collections::BTreeMap;

use serde::Deserialize;

/// A value that ICM writes as a comma-separated string and TOML users as a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StringList {
    List(Vec<String>),
    Commas(String),
}

impl StringList {
    pub fn items(&self) -> Vec<String> {
        match self {
            StringList::List(items) => items.iter().map(|s| s.trim().to_owned()).collect(),
            StringList::Commas(text) => text
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct RawConfig {
    pub server: Option<RawServer>,
    pub admin: Option<RawAdmin>,
    pub oidc: Option<RawOidc>,
    pub session: Option<RawSession>,
    pub headers: Option<RawHeaders>,
    pub log: Option<RawLog>,
    pub commercetools: Option<RawCommercetools>,
    pub backend: Option<RawBackend>,
    pub limits: Option<RawLimits>,
    pub store: Option<RawStore>,
    pub pages: Option<RawPages>,
    pub ssf: Option<RawSsf>,
    pub identity_providers: Option<BTreeMap<String, RawIdentityProvider>>,
    pub organizations: Option<BTreeMap<String, RawOrganization>>,
    pub routes: Option<Vec<RawRoute>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawServer {
    pub listen: Option<String>,
    pub upstream: Option<String>,
    pub public_url: Option<String>,
    pub trusted_proxies: Option<Vec<String>>,
    pub threads: Option<i64>,
    pub connect_timeout: Option<toml::Value>,
    pub read_timeout: Option<toml::Value>,
    pub write_timeout: Option<toml::Value>,
    pub idle_timeout: Option<toml::Value>,
    pub header_timeout: Option<toml::Value>,
    pub client_idle_timeout: Option<toml::Value>,
    pub tls: Option<RawTls>,
    pub upstream_ca: Option<String>,
    pub preserve_header_case: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawTls {
    pub cert: Option<String>,
    pub key: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawOidc {
    pub remote: Option<String>,
    pub jwk_cache_lifetime: Option<toml::Value>,
    pub max_clock_skew: Option<toml::Value>,
    pub min_access_token_lifetime_left: Option<toml::Value>,
    pub state_cookie_name: Option<String>,
    pub accept_unsigned_tokens: Option<bool>,
    pub path_prefix: Option<String>,
    pub http_timeout: Option<toml::Value>,
    pub secret_expiry_warning: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSession {
    pub cookie_name: Option<String>,
    pub keys: Option<Vec<String>>,
    pub max_age: Option<toml::Value>,
    pub idle_timeout: Option<toml::Value>,
    pub secure: Option<bool>,
    pub same_site: Option<String>,
    pub domain: Option<String>,
    pub preserve_post_max: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawHeaders {
    pub prefix: Option<String>,
    pub claims: Option<Vec<String>>,
    pub forward_access_token: Option<bool>,
    pub strip_untrusted: Option<Vec<String>>,
    pub assertion: Option<bool>,
    pub assertion_audience: Option<String>,
    pub assertion_keys: Option<Vec<String>>,
    pub max_groups: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLog {
    pub format: Option<String>,
    pub level: Option<String>,
    pub audit: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawIdentityProvider {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub name: Option<String>,
    pub issuer: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub client_secret_expire_at: Option<String>,
    pub additional_scopes: Option<Vec<String>>,
    pub logout_params: Option<BTreeMap<String, String>>,
    pub audiences: Option<Vec<String>>,
    pub algorithms: Option<Vec<String>>,
    pub access_token_type: Option<String>,
    pub introspection: Option<bool>,
    pub groups_claim: Option<String>,
    pub claims: Option<BTreeMap<String, String>>,
    pub offline_access: Option<String>,
    pub ca_file: Option<String>,
    pub token_endpoint_auth: Option<String>,
    pub client_signing_key: Option<StringList>,
    pub client_certificate: Option<String>,
    pub client_certificate_key: Option<String>,
    pub pushed_authorization: Option<String>,
    pub dpop: Option<bool>,
    pub resource: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawLimits {
    pub login_requests_per_minute: Option<i64>,
    pub max_header_bytes: Option<i64>,
    pub max_headers: Option<i64>,
    pub max_connections: Option<i64>,
    pub max_connections_per_client: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawStore {
    pub kind: Option<String>,
    pub url: Option<String>,
    pub cluster: Option<bool>,
    pub key_prefix: Option<String>,
    pub timeout: Option<toml::Value>,
    pub load_timeout: Option<toml::Value>,
    pub server_side_sessions: Option<bool>,
    pub path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawPages {
    pub shop_name: Option<String>,
    pub logo_url: Option<String>,
    pub accent_color: Option<String>,
    pub support_contact: Option<String>,
    pub stylesheet: Option<String>,
    pub templates: Option<String>,
    pub messages: Option<String>,
    pub default_language: Option<String>,
    pub languages: Option<Vec<String>>,
    pub hosts: Option<BTreeMap<String, RawPageLook>>,
}

/// `[pages.hosts."<host>"]`: the look of the pages on one host.
#[derive(Debug, Default, Deserialize)]
pub struct RawPageLook {
    pub shop_name: Option<String>,
    pub logo_url: Option<String>,
    pub accent_color: Option<String>,
    pub support_contact: Option<String>,
    pub stylesheet: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSsf {
    pub transmitters: Option<Vec<RawTransmitter>>,
}

/// `[[ssf.transmitters]]`: who may push Security Event Tokens.
#[derive(Debug, Default, Deserialize)]
pub struct RawTransmitter {
    pub issuer: Option<String>,
    pub jwks_uri: Option<String>,
    pub audience: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawBackend {
    pub profile: Option<String>,
    pub spree: Option<RawSpree>,
    pub icm: Option<RawIcm>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawSpree {
    pub provider: Option<String>,
    pub publishable_key: Option<String>,
    pub login_path: Option<String>,
    pub refresh_path: Option<String>,
    pub logout_path: Option<String>,
    pub exchange_token: Option<String>,
    pub guest_cart_cookie: Option<String>,
    pub associate_path: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawIcm {
    pub provisioning_url: Option<String>,
    pub provisioning_secret: Option<String>,
    pub session_cookie: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawCommercetools {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub project_key: Option<String>,
    pub customer_id_claim: Option<String>,
    pub include_customer_id: Option<bool>,
    pub default_scopes: Option<Vec<String>>,
    pub scope_claim: Option<String>,
    pub scope_mapping: Option<BTreeMap<String, Vec<String>>>,
    pub api: Option<RawCommercetoolsApi>,
    pub sync_customers: Option<bool>,
    pub customer_group_claim: Option<String>,
    pub customer_groups: Option<BTreeMap<String, String>>,
    pub group_scopes: Option<BTreeMap<String, Vec<String>>>,
    pub introspection_deadline: Option<toml::Value>,
    pub anonymous_id_cookie: Option<String>,
    pub anonymous_cart_sign_in_mode: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawCommercetoolsApi {
    pub url: Option<String>,
    pub auth_url: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub scopes: Option<StringList>,
    pub timeout: Option<toml::Value>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawOrganization {
    pub external_name: Option<String>,
    pub identity_providers: Option<StringList>,
    pub self_administration_policy: Option<StringList>,
    pub logout_policy: Option<String>,
    pub local_login_url: Option<String>,
    pub post_logout_url: Option<String>,
    pub members: Option<Vec<RawRule>>,
}

/// `{ claim = "...", any_of = [...] }` or `{ claim = "...", ends_with = [...] }`.
#[derive(Debug, Default, Deserialize)]
pub struct RawRule {
    pub claim: Option<String>,
    pub any_of: Option<Vec<String>>,
    pub ends_with: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
pub struct RawRoute {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub auth: Option<String>,
    pub organization: Option<String>,
    pub allow: Option<Vec<RawRule>>,
    pub preflight: Option<String>,
    pub acr_values: Option<Vec<String>>,
    pub max_age: Option<toml::Value>,
}

/// The keys a table at `path` may hold, for "did you mean" suggestions on unknown keys.
pub fn known_keys(path: &[String]) -> &'static [&'static str] {
    use serde_aux::serde_introspection::serde_introspect as fields;
    match path {
        [] => fields::<RawConfig>(),
        [section] => match section.as_str() {
            "server" => fields::<RawServer>(),
            "admin" => fields::<RawAdmin>(),
            "oidc" => fields::<RawOidc>(),
            "session" => fields::<RawSession>(),
            "headers" => fields::<RawHeaders>(),
            "log" => fields::<RawLog>(),
            "commercetools" => fields::<RawCommercetools>(),
            "backend" => fields::<RawBackend>(),
            "limits" => fields::<RawLimits>(),
            "store" => fields::<RawStore>(),
            "pages" => fields::<RawPages>(),
            "ssf" => fields::<RawSsf>(),
            _ => &[],
        },
        [section, sub] if section == "server" && sub == "tls" => fields::<RawTls>(),
        [section, sub] if section == "commercetools" && sub == "api" => {
            fields::<RawCommercetoolsApi>()
        }
        [section, sub] if section == "backend" => match sub.as_str() {
            "spree" => fields::<RawSpree>(),
            "icm" => fields::<RawIcm>(),
            _ => &[],
        },
        [section, hosts, _] if section == "pages" && hosts == "hosts" => fields::<RawPageLook>(),
        [section, list, _] if section == "ssf" && list == "transmitters" => {
            fields::<RawTransmitter>()
        }
        [section, _] => match section.as_str() {
            "identity_providers" => fields::<RawIdentityProvider>(),
            "organizations" => fields::<RawOrganization>(),
            "routes" => fields::<RawRoute>(),
            _ => &[],
        },
        [section, _, list, _]
            if (section == "organizations" && list == "members")
                || (section == "routes" && list == "allow") =>
        {
            fields::<RawRule>()
        }
        _ => &[],
    }
}

/// Every key the config file may hold, as the reference names them: tables of named
/// entries as `<key>` (`identity_providers.<key>.issuer`), arrays of tables as `[]`
/// (`routes[].allow[].claim`). Read from the same model as [`known_keys`], so the key
/// reference is checked against what the parser accepts.
pub fn every_key() -> Vec<String> {
    fn walk(path: &mut Vec<String>, shown: &str, out: &mut Vec<String>) {
        for key in known_keys(path) {
            let item = match (path.len(), *key) {
                (0, "identity_providers" | "organizations") => Some(("_", ".<key>")),
                (0, "routes") | (2, "members" | "allow") => Some(("0", "[]")),
                (1, "hosts") => Some(("_", ".<host>")),
                (1, "transmitters") => Some(("0", "[]")),
                _ => None,
            };
            let name = match shown.is_empty() {
                true => (*key).to_owned(),
                false => format!("{shown}.{key}"),
            };
            path.push((*key).to_owned());
            match item {
                Some((placeholder, suffix)) => {
                    path.push(placeholder.to_owned());
                    walk(path, &format!("{name}{suffix}"), out);
                    path.pop();
                }
                None if !known_keys(path).is_empty() => walk(path, &name, out),
                None => out.push(name),
            }
            path.pop();
        }
    }
    let mut keys = Vec::new();
    walk(&mut Vec::new(), "", &mut keys);
    keys
}

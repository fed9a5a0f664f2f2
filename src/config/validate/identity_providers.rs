//! `[oidc]` and `[identity_providers.*]`: the IdPs, their algorithms and claim mappings.

use super::*;
use crate::config::choice::choice;

/// `oidc.remote`, ICM's word for whether remote IdPs are offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Remote {
    Supported,
    Unsupported,
}

choice!(Remote {
    Supported => "supported",
    Unsupported => "unsupported",
});

impl Validator {
    pub(super) fn oidc(&mut self, raw: raw::RawOidc) -> OidcConfig {
        let remote = self.choice("oidc.remote", raw.remote.as_deref(), Remote::Unsupported)
            == Some(Remote::Supported);
        let state_cookie_name = self.cookie_name(
            "oidc.state_cookie_name",
            raw.state_cookie_name,
            defaults::oidc::STATE_COOKIE_NAME,
        );
        let path_prefix = match raw.path_prefix {
            None => defaults::oidc::PATH_PREFIX.to_owned(),
            Some(p) if p.starts_with('/') && p.len() > 1 && !p.ends_with('/') => p,
            Some(_) => {
                self.problem(
                    "oidc.path_prefix",
                    "must start with / and not end with / (e.g. \"/oauth2\")",
                );
                defaults::oidc::PATH_PREFIX.to_owned()
            }
        };
        use defaults::oidc as default;
        let [jwk_cache_lifetime, max_clock_skew, min_left, http_timeout, secret_expiry_warning] =
            self.durations([
                (
                    "oidc.jwk_cache_lifetime",
                    raw.jwk_cache_lifetime,
                    default::JWK_CACHE_LIFETIME,
                ),
                (
                    "oidc.max_clock_skew",
                    raw.max_clock_skew,
                    default::MAX_CLOCK_SKEW,
                ),
                (
                    "oidc.min_access_token_lifetime_left",
                    raw.min_access_token_lifetime_left,
                    default::MIN_ACCESS_TOKEN_LIFETIME_LEFT,
                ),
                ("oidc.http_timeout", raw.http_timeout, default::HTTP_TIMEOUT),
                (
                    "oidc.secret_expiry_warning",
                    raw.secret_expiry_warning,
                    default::SECRET_EXPIRY_WARNING,
                ),
            ]);
        // The IdPs' secrets, read after this section, are warned about this long ahead.
        self.secret_expiry_warning =
            chrono::Duration::from_std(secret_expiry_warning).unwrap_or(chrono::Duration::MAX);
        OidcConfig {
            remote,
            jwk_cache_lifetime,
            max_clock_skew,
            min_access_token_lifetime_left: min_left,
            state_cookie_name,
            accept_unsigned_tokens: (raw.accept_unsigned_tokens)
                .unwrap_or(default::ACCEPT_UNSIGNED_TOKENS),
            path_prefix,
            http_timeout,
            secret_expiry_warning,
        }
    }

    pub(super) fn identity_providers(
        &mut self,
        raw: BTreeMap<String, RawIdentityProvider>,
    ) -> BTreeMap<String, IdentityProvider> {
        raw.into_iter()
            .filter_map(|(key, idp)| self.identity_provider(&key, idp).map(|idp| (key, idp)))
            .collect()
    }

    pub(super) fn identity_provider(
        &mut self,
        key: &str,
        raw: RawIdentityProvider,
    ) -> Option<IdentityProvider> {
        let path = format!("identity_providers.{key}");
        if !is_simple_key(key) {
            self.problem(&path, "key may only hold letters, digits, '_', '-' and '.'");
        }
        let name = match raw.name.clone() {
            Some(name) if !name.trim().is_empty() => name,
            _ => {
                self.problem(
                    format!("{path}.name"),
                    "missing (the name shown on the login page)",
                );
                key.to_owned()
            }
        };
        let kind = match raw.kind.as_deref() {
            Some("local") => {
                for (field, present) in [
                    ("issuer", raw.issuer.is_some()),
                    ("client_id", raw.client_id.is_some()),
                    ("client_secret", raw.client_secret.is_some()),
                ] {
                    if present {
                        self.warnings.push(format!(
                            "{path}.{field} is ignored for a local identity provider"
                        ));
                    }
                }
                IdentityProviderKind::Local
            }
            Some("oidc") => IdentityProviderKind::Oidc(Box::new(self.oidc_provider(&path, raw)?)),
            Some(other) => {
                self.bad_enum(&format!("{path}.type"), other, &["oidc", "local"]);
                return None;
            }
            None => {
                self.problem(format!("{path}.type"), "missing (\"oidc\" or \"local\")");
                return None;
            }
        };
        Some(IdentityProvider {
            key: key.to_owned(),
            name,
            kind,
        })
    }

    pub(super) fn oidc_provider(
        &mut self,
        path: &str,
        raw: RawIdentityProvider,
    ) -> Option<OidcProvider> {
        let issuer = match raw.issuer.as_deref() {
            None => {
                self.problem(
                    format!("{path}.issuer"),
                    "missing (required for type \"oidc\")",
                );
                None
            }
            Some(text) => match Url::parse(text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                    Some(text.to_owned())
                }
                _ => {
                    self.problem(format!("{path}.issuer"), "not a URL");
                    None
                }
            },
        };
        let client_id = match raw.client_id {
            Some(id) if !id.is_empty() => Some(id),
            _ => {
                self.problem(
                    format!("{path}.client_id"),
                    "missing (required for type \"oidc\")",
                );
                None
            }
        };
        let token_endpoint_auth = match raw.token_endpoint_auth.as_deref() {
            None => None,
            text => self.choice(
                &format!("{path}.token_endpoint_auth"),
                text,
                TokenEndpointAuth::ClientSecretBasic,
            ),
        };
        let needs_secret = token_endpoint_auth.is_none_or(TokenEndpointAuth::uses_secret);
        let client_secret = match (needs_secret, raw.client_secret.as_deref()) {
            (true, reference) => self.required_secret(
                &format!("{path}.client_secret"),
                reference,
                "required for type \"oidc\" unless token_endpoint_auth is private_key_jwt or tls_client_auth",
            ),
            (false, Some(reference)) => self.secret(&format!("{path}.client_secret"), reference),
            (false, None) => Some(crate::config::Secret::new("")),
        };
        let client_signing_keys = self.client_signing_keys(path, raw.client_signing_key.as_ref());
        if token_endpoint_auth == Some(TokenEndpointAuth::PrivateKeyJwt)
            && client_signing_keys.is_empty()
        {
            self.problem(
                format!("{path}.client_signing_key"),
                "missing (required for token_endpoint_auth = \"private_key_jwt\")",
            );
        }
        let client_certificate = self.client_certificate(
            path,
            raw.client_certificate.as_deref(),
            raw.client_certificate_key.as_deref(),
        );
        if token_endpoint_auth == Some(TokenEndpointAuth::TlsClientAuth)
            && client_certificate.is_none()
        {
            self.problem(
                format!("{path}.client_certificate"),
                "missing (required with client_certificate_key for token_endpoint_auth = \"tls_client_auth\")",
            );
        }
        let pushed_authorization = self
            .choice(
                &format!("{path}.pushed_authorization"),
                raw.pushed_authorization.as_deref(),
                PushedAuthorization::Auto,
            )
            .unwrap_or_default();
        let resource = raw.resource.clone().unwrap_or_default();
        for (i, target) in resource.iter().enumerate() {
            // RFC 8707 §2: an absolute URI without a fragment.
            match Url::parse(target) {
                Ok(url) if url.fragment().is_none() => {}
                _ => self.problem(
                    format!("{path}.resource[{i}]"),
                    "must be an absolute URI without a fragment (e.g. \"https://api.shop.example\")",
                ),
            }
        }
        let client_secret_expire_at = raw.client_secret_expire_at.as_deref().and_then(|text| {
            match chrono::DateTime::parse_from_rfc3339(text) {
                Ok(at) => Some(at.with_timezone(&chrono::Utc)),
                Err(_) => {
                    self.problem(
                        format!("{path}.client_secret_expire_at"),
                        format!("\"{text}\" is not an RFC 3339 timestamp (e.g. \"2027-12-31T12:30:45Z\")"),
                    );
                    None
                }
            }
        });
        if let Some(at) = client_secret_expire_at {
            let now = chrono::Utc::now();
            if at < now {
                self.warnings.push(format!(
                    "{path}.client_secret_expire_at: the client secret expired on {at}"
                ));
            } else if at - now < self.secret_expiry_warning {
                self.warnings.push(format!(
                    "{path}.client_secret_expire_at: the client secret expires on {at}, in {} days",
                    (at - now).num_days()
                ));
            }
        }
        let logout_params = raw.logout_params.clone().unwrap_or_default();
        let audiences = raw.audiences.clone().unwrap_or_default();
        let algorithms = self.algorithms(path, raw.algorithms.clone());
        let claims = self.claim_mapping(path, raw.claims.clone());
        let additional_scopes = raw.additional_scopes.unwrap_or_default();
        for (i, scope) in additional_scopes.iter().enumerate() {
            if scope.is_empty() || scope.contains(char::is_whitespace) {
                self.problem(
                    format!("{path}.additional_scopes[{i}]"),
                    "a scope is one word without spaces",
                );
            }
        }
        for audience in audiences.iter().filter(|a| a.starts_with("api://")) {
            let asked = additional_scopes
                .iter()
                .any(|scope| scope.starts_with(&format!("{audience}/")));
            if !asked {
                self.warnings.push(format!(
                    "{path}.audiences names {audience}, but no additional_scopes entry asks for it: Azure issues access tokens for your API only when a scope of it is requested (e.g. \"{audience}/access_as_user\"); otherwise they are for Microsoft Graph and this audience never matches"
                ));
            }
        }
        if let Some(issuer) = &issuer {
            if issuer.starts_with("https://sts.windows.net/") {
                self.problem(
                    format!("{path}.issuer"),
                    "is an Azure AD v1.0 issuer, which ICM does not support either; use the v2.0 endpoint https://login.microsoftonline.com/<tenant>/v2.0 (and accessTokenAcceptedVersion = 2 in the app manifest)",
                );
            }
        }
        let access_token_type = match raw.access_token_type.as_deref() {
            None => None,
            Some(t) if t.eq_ignore_ascii_case("at+jwt") => Some("at+jwt".to_owned()),
            Some(other) => {
                self.bad_enum(&format!("{path}.access_token_type"), other, &["at+jwt"]);
                None
            }
        };
        let groups_claim = match raw.groups_claim.as_deref() {
            None => "groups".to_owned(),
            Some(claim) => self
                .claim_path(&format!("{path}.groups_claim"), claim)
                .unwrap_or_else(|| defaults::oidc::GROUPS_CLAIM.to_owned()),
        };
        let offline_access = self
            .choice(
                &format!("{path}.offline_access"),
                raw.offline_access.as_deref(),
                OfflineAccess::Auto,
            )
            .unwrap_or(OfflineAccess::Auto);
        let offline_access = match (offline_access, &issuer) {
            (OfflineAccess::Auto, Some(issuer)) => OfflineAccess::for_issuer(issuer),
            (OfflineAccess::Auto, None) => OfflineAccess::Never,
            (chosen, _) => chosen,
        };
        let ca_certificates = match raw.ca_file.as_deref() {
            None => Vec::new(),
            Some(file) => self.ca_file(&format!("{path}.ca_file"), file),
        };
        let client_id = client_id?;
        Some(OidcProvider {
            offline_access,
            ca_certificates,
            access_token_type,
            groups_claim,
            introspection: raw.introspection.unwrap_or(false),
            issuer: issuer?,
            audiences: if audiences.is_empty() {
                vec![client_id.clone()]
            } else {
                audiences
            },
            client_id,
            client_secret: client_secret?,
            client_secret_expire_at,
            additional_scopes,
            logout_params,
            algorithms,
            claims,
            token_endpoint_auth,
            client_signing_keys,
            client_certificate,
            pushed_authorization,
            dpop: raw.dpop.unwrap_or(false),
            resource,
        })
    }

    /// `client_signing_key`: one or several secrets, each a PKCS#8 PEM private key.
    fn client_signing_keys(
        &mut self,
        path: &str,
        raw: Option<&raw::StringList>,
    ) -> Vec<crate::config::client_key::ClientKey> {
        let key = format!("{path}.client_signing_key");
        let references = match raw {
            None => return Vec::new(),
            Some(raw::StringList::List(items)) => items.clone(),
            // One secret reference, or a PEM written in the file (no commas in either).
            Some(raw::StringList::Commas(text)) => vec![text.clone()],
        };
        let mut keys = Vec::new();
        for (i, reference) in references.iter().enumerate() {
            let named = match references.len() {
                1 => key.clone(),
                _ => format!("{key}[{i}]"),
            };
            let Some(secret) = self.secret(&named, reference) else {
                continue;
            };
            match crate::config::client_key::parse(secret.expose()) {
                Ok(parsed) => keys.push(parsed),
                Err(problem) => self.problem(named, problem),
            }
        }
        keys
    }

    /// `client_certificate` (a PEM file) and `client_certificate_key` (a secret holding
    /// its PKCS#8 PEM key), as one PEM identity; both or neither.
    fn client_certificate(
        &mut self,
        path: &str,
        certificate: Option<&str>,
        key: Option<&str>,
    ) -> Option<crate::config::Secret> {
        let (certificate, key) = match (certificate, key) {
            (None, None) => return None,
            (Some(c), Some(k)) => (c, k),
            (Some(_), None) => {
                self.problem(
                    format!("{path}.client_certificate_key"),
                    "missing (the certificate's private key)",
                );
                return None;
            }
            (None, Some(_)) => {
                self.problem(
                    format!("{path}.client_certificate"),
                    "missing (the certificate of client_certificate_key)",
                );
                return None;
            }
        };
        let pem = match std::fs::read_to_string(certificate) {
            Ok(pem) => pem,
            Err(error) => {
                self.problem(
                    format!("{path}.client_certificate"),
                    format!("cannot read {certificate}: {error}"),
                );
                return None;
            }
        };
        let key = self.secret(&format!("{path}.client_certificate_key"), key)?;
        let identity = format!("{}\n{}\n", pem.trim(), key.expose().trim());
        match reqwest::Identity::from_pem(identity.as_bytes()) {
            Ok(_) => Some(crate::config::Secret::new(identity)),
            Err(_) => {
                self.problem(
                    format!("{path}.client_certificate"),
                    "the certificate and client_certificate_key are not a PEM certificate and its PKCS#8 private key",
                );
                None
            }
        }
    }

    /// The certificates of a PEM bundle; a file that cannot be read or holds none is named.
    fn ca_file(&mut self, key: &str, file: &str) -> Vec<Vec<u8>> {
        let text = match std::fs::read(file) {
            Ok(text) => text,
            Err(error) => {
                self.problem(key, format!("cannot read {file}: {error}"));
                return Vec::new();
            }
        };
        use rustls::pki_types::pem::PemObject;
        let parsed: Result<Vec<_>, _> =
            rustls::pki_types::CertificateDer::pem_slice_iter(&text).collect();
        match parsed {
            Ok(certs) if !certs.is_empty() => certs.into_iter().map(|c| c.to_vec()).collect(),
            Ok(_) => {
                self.problem(key, format!("{file} holds no PEM certificate"));
                Vec::new()
            }
            Err(error) => {
                self.problem(key, format!("{file} is not a PEM bundle: {error}"));
                Vec::new()
            }
        }
    }

    /// An IdP serving several organizations lets its users pick any of them; one without
    /// `members` then takes everyone, which is rarely meant.
    pub(super) fn note_open_organizations(
        &mut self,
        orgs: &BTreeMap<String, Organization>,
        idps: &BTreeMap<String, IdentityProvider>,
    ) {
        let mut serving: BTreeMap<&str, Vec<&Organization>> = BTreeMap::new();
        for org in orgs.values() {
            // `local` is the backend's own login: the backend decides who is whose.
            let remote = org
                .identity_providers
                .iter()
                .filter(|idp| idps.get(*idp).is_some_and(|i| i.oidc().is_some()));
            for idp in remote {
                serving.entry(idp.as_str()).or_default().push(org);
            }
        }
        for (idp, orgs) in serving.into_iter().filter(|(_, orgs)| orgs.len() > 1) {
            for org in orgs.iter().filter(|org| org.members.is_empty()) {
                self.warnings.push(format!(
                    "organizations.{}.members is not set but {idp} also serves {}: every user of {idp} can sign in as a member of {}",
                    org.key,
                    orgs.iter()
                        .filter(|o| o.key != org.key)
                        .map(|o| o.key.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    org.key
                ));
            }
        }
    }

    /// Entries that share an issuer (two clients of one realm) are fine, but an operator
    /// should know: tokens of that issuer count for each of them.
    pub(super) fn note_shared_issuers(&mut self, idps: &BTreeMap<String, IdentityProvider>) {
        let mut by_issuer: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (key, idp) in idps {
            if let Some(oidc) = idp.oidc() {
                by_issuer.entry(oidc.issuer.as_str()).or_default().push(key);
            }
        }
        for (issuer, keys) in by_issuer.into_iter().filter(|(_, keys)| keys.len() > 1) {
            self.warnings.push(format!(
                "identity_providers {} share the issuer {issuer}: logout and bearer tokens of that issuer count for each entry whose client they name",
                keys.join(", ")
            ));
        }
    }

    pub(super) fn algorithms(
        &mut self,
        path: &str,
        raw: Option<Vec<String>>,
    ) -> Vec<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm::*;
        const ASYMMETRIC: [(&str, jsonwebtoken::Algorithm); 9] = [
            ("RS256", RS256),
            ("RS384", RS384),
            ("RS512", RS512),
            ("PS256", PS256),
            ("PS384", PS384),
            ("PS512", PS512),
            ("ES256", ES256),
            ("ES384", ES384),
            ("EdDSA", EdDSA),
        ];
        let Some(names) = raw else {
            return vec![RS256];
        };
        let allowed: Vec<&str> = ASYMMETRIC.iter().map(|(n, _)| *n).collect();
        names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let found = ASYMMETRIC.iter().find(|(n, _)| n == name).map(|(_, a)| *a);
                if found.is_none() {
                    // HS* would let anyone holding the (public) client id forge tokens.
                    self.bad_enum(&format!("{path}.algorithms[{i}]"), name, &allowed);
                }
                found
            })
            .collect()
    }

    pub(super) fn claim_mapping(
        &mut self,
        path: &str,
        raw: Option<BTreeMap<String, String>>,
    ) -> ClaimMapping {
        let mut mapping = ClaimMapping::default();
        for (field, claim) in raw.unwrap_or_default() {
            let slot = match field.as_str() {
                "external_id" => &mut mapping.external_id,
                "email" => &mut mapping.email,
                "name" => &mut mapping.name,
                "login_name" => &mut mapping.login_name,
                "first_name" => &mut mapping.first_name,
                "last_name" => &mut mapping.last_name,
                _ => {
                    let allowed = [
                        "external_id",
                        "email",
                        "name",
                        "login_name",
                        "first_name",
                        "last_name",
                    ];
                    self.bad_enum(&format!("{path}.claims.{field}"), &field, &allowed);
                    continue;
                }
            };
            *slot = claim;
        }
        mapping
    }
}

//! `[backend]` (ICM, Spree) and `[commercetools]` with its API client.

use super::*;
use crate::config::choice::choice;

/// `backend.spree.exchange_token`: which IdP token Spree's exchange gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExchangeToken {
    IdToken,
    AccessToken,
}

choice!(ExchangeToken {
    IdToken => "id_token",
    AccessToken => "access_token",
});

impl Validator {
    pub(super) fn backend(&mut self, raw: raw::RawBackend) -> BackendConfig {
        let profile = self
            .choice(
                "backend.profile",
                raw.profile.as_deref(),
                BackendProfile::Generic,
            )
            .unwrap_or_default();
        let spree_raw = raw.spree.unwrap_or_default();
        let spree = (profile == BackendProfile::Spree).then(|| self.spree(spree_raw));
        let icm_raw = raw.icm.unwrap_or_default();
        let provisioning_url =
            icm_raw
                .provisioning_url
                .as_deref()
                .and_then(|text| match Url::parse(text) {
                    Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                    _ => {
                        self.problem("backend.icm.provisioning_url", "not an http(s) URL");
                        None
                    }
                });
        let provisioning_secret = icm_raw
            .provisioning_secret
            .as_deref()
            .and_then(|r| self.secret("backend.icm.provisioning_secret", r));
        BackendConfig {
            profile,
            spree,
            icm: IcmConfig {
                provisioning_url,
                provisioning_secret,
                session_cookie: icm_raw.session_cookie.unwrap_or_else(|| "sid".to_owned()),
            },
        }
    }

    pub(super) fn spree(&mut self, raw: raw::RawSpree) -> SpreeConfig {
        let provider = raw.provider.unwrap_or_default();
        if provider.is_empty() {
            self.problem(
                "backend.spree.provider",
                "missing (the strategy key registered in Spree)",
            );
        }
        let path = |v: &mut Self, key: &str, value: Option<String>, default: &str| match value {
            None => default.to_owned(),
            Some(p) if p.starts_with('/') => p,
            Some(_) => {
                v.problem(
                    format!("backend.spree.{key}"),
                    "must be a path starting with /",
                );
                default.to_owned()
            }
        };
        let exchange = raw.exchange_token.as_deref();
        let exchange_access_token = self.choice(
            "backend.spree.exchange_token",
            exchange,
            ExchangeToken::IdToken,
        ) == Some(ExchangeToken::AccessToken);
        SpreeConfig {
            provider,
            publishable_key: raw
                .publishable_key
                .as_deref()
                .and_then(|r| self.secret("backend.spree.publishable_key", r)),
            login_path: path(
                self,
                "login_path",
                raw.login_path,
                "/api/v3/store/auth/login",
            ),
            refresh_path: path(
                self,
                "refresh_path",
                raw.refresh_path,
                "/api/v3/store/auth/refresh",
            ),
            logout_path: path(
                self,
                "logout_path",
                raw.logout_path,
                "/api/v3/store/auth/logout",
            ),
            associate_path: path(
                self,
                "associate_path",
                raw.associate_path,
                "/api/v3/store/cart/associate",
            ),
            guest_cart_cookie: raw.guest_cart_cookie.filter(|name| {
                let token = !name.is_empty()
                    && name
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b));
                if !token {
                    self.problem(
                        "backend.spree.guest_cart_cookie",
                        format!("{name:?} is not a cookie name"),
                    );
                }
                token
            }),
            exchange_access_token,
        }
    }

    pub(super) fn commercetools(
        &mut self,
        raw: raw::RawCommercetools,
    ) -> Option<CommercetoolsConfig> {
        let key = |field: &str| format!("commercetools.{field}");
        let client_id = raw.client_id.filter(|c| !c.is_empty());
        if client_id.is_none() {
            self.problem(
                key("client_id"),
                "missing (the user name commercetools sends with HTTP Basic)",
            );
        }
        let client_secret = self.required_secret(
            &key("client_secret"),
            raw.client_secret.as_deref(),
            "the password commercetools sends with HTTP Basic",
        );
        let project_key = raw.project_key.filter(|p| !p.is_empty());
        if project_key.is_none() {
            self.problem(
                key("project_key"),
                "missing (the commercetools project key used in scopes)",
            );
        }
        let default_scopes = raw.default_scopes.unwrap_or_else(|| {
            vec![
                "view_products:{projectKey}".to_owned(),
                "manage_my_orders:{projectKey}".to_owned(),
            ]
        });
        let project_key = project_key?;
        let api = raw
            .api
            .and_then(|api| self.commercetools_api(api, &project_key));
        let sync_customers = raw.sync_customers.unwrap_or(false);
        let group_scopes = raw.group_scopes.unwrap_or_default();
        if api.is_none() {
            for (set, field, why) in [
                (
                    sync_customers,
                    "sync_customers",
                    "creates and updates customers through it",
                ),
                (
                    !group_scopes.is_empty(),
                    "group_scopes",
                    "reads the customer's group through it",
                ),
            ] {
                if set {
                    self.problem(
                        key(field),
                        format!("needs [commercetools.api]: the sidecar {why}"),
                    );
                }
            }
        }
        let introspection_deadline = self.duration(
            &key("introspection_deadline"),
            raw.introspection_deadline,
            defaults::commercetools::INTROSPECTION_DEADLINE,
        );
        if introspection_deadline >= Duration::from_millis(500) {
            self.warnings.push(format!(
                "commercetools.introspection_deadline is {} ms: commercetools gives up on introspection after 500 ms",
                introspection_deadline.as_millis()
            ));
        }
        let mode = raw.anonymous_cart_sign_in_mode.as_deref();
        let anonymous_cart_sign_in_mode = match mode {
            None | Some("MergeWithExistingCustomerCart") => "MergeWithExistingCustomerCart",
            Some("UseAsNewActiveCustomerCart") => "UseAsNewActiveCustomerCart",
            Some(other) => {
                self.problem(
                    "commercetools.anonymous_cart_sign_in_mode",
                    format!(
                        "{other:?}: MergeWithExistingCustomerCart or UseAsNewActiveCustomerCart"
                    ),
                );
                "MergeWithExistingCustomerCart"
            }
        }
        .to_owned();
        Some(CommercetoolsConfig {
            client_id: client_id?,
            client_secret: client_secret?,
            project_key,
            customer_id_claim: (raw.customer_id_claim)
                .unwrap_or_else(|| defaults::commercetools::CUSTOMER_ID_CLAIM.to_owned()),
            include_customer_id: (raw.include_customer_id)
                .unwrap_or(defaults::commercetools::INCLUDE_CUSTOMER_ID),
            default_scopes,
            scope_claim: (raw.scope_claim)
                .unwrap_or_else(|| defaults::commercetools::SCOPE_CLAIM.to_owned()),
            scope_mapping: raw.scope_mapping.unwrap_or_default(),
            api,
            sync_customers,
            customer_group_claim: raw
                .customer_group_claim
                .unwrap_or_else(|| defaults::commercetools::CUSTOMER_GROUP_CLAIM.to_owned()),
            customer_groups: raw.customer_groups.unwrap_or_default(),
            group_scopes,
            introspection_deadline,
            anonymous_id_cookie: raw.anonymous_id_cookie.filter(|c| !c.is_empty()),
            anonymous_cart_sign_in_mode,
        })
    }

    pub(super) fn commercetools_api(
        &mut self,
        raw: raw::RawCommercetoolsApi,
        project_key: &str,
    ) -> Option<CommercetoolsApiConfig> {
        let key = |field: &str| format!("commercetools.api.{field}");
        let url_of = |this: &mut Self, field: &str, value: Option<String>, default: &str| {
            let text = value.unwrap_or_else(|| default.to_owned());
            match Url::parse(&text) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
                _ => {
                    this.problem(key(field), "must be an http(s) URL");
                    None
                }
            }
        };
        let url = url_of(
            self,
            "url",
            raw.url,
            "https://api.europe-west1.gcp.commercetools.com",
        );
        let auth_url = url_of(
            self,
            "auth_url",
            raw.auth_url,
            "https://auth.europe-west1.gcp.commercetools.com",
        );
        let client_id = raw.client_id.filter(|c| !c.is_empty());
        if client_id.is_none() {
            self.problem(key("client_id"), "missing (the API client's id)");
        }
        let client_secret = self.required_secret(
            &key("client_secret"),
            raw.client_secret.as_deref(),
            "the API client's secret, e.g. \"env:CT_API_SECRET\"",
        );
        let scopes: Vec<String> = match raw.scopes {
            Some(list) => list
                .items()
                .iter()
                .flat_map(|s| s.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
                .collect(),
            None => vec![
                "manage_customers:{projectKey}".to_owned(),
                "view_customer_groups:{projectKey}".to_owned(),
            ],
        };
        let scopes = scopes
            .iter()
            .map(|s| s.replace("{projectKey}", project_key))
            .collect::<Vec<_>>()
            .join(" ");
        let timeout = self.duration(
            &key("timeout"),
            raw.timeout,
            defaults::commercetools::API_TIMEOUT,
        );
        Some(CommercetoolsApiConfig {
            url: url?,
            auth_url: auth_url?,
            client_id: client_id?,
            client_secret: client_secret?,
            scopes,
            timeout,
        })
    }
}

//! `/oauth2/introspect`: RFC 7662 token introspection for commercetools' external OAuth.
//! commercetools calls it with the shopper's IdP access token and reads the scopes that
//! decide what the token may do in the project.

use std::collections::BTreeSet;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use sha2::{Digest, Sha256};

use std::sync::Arc;

use super::backend::Backend;
use super::bearer::BearerTokens;
use super::{Params, Request};
use crate::backend::commercetools::{CommercetoolsApi, CustomerRef};
use crate::config::CommercetoolsConfig;
use crate::metrics::Metrics;
use crate::oidc::access::VerifiedToken;
use crate::oidc::verify::VerifyError;
use crate::reply::Reply;

pub struct Introspection {
    /// `[commercetools]`: the introspection's credentials and scopes; `None`: off.
    pub commercetools: Option<CommercetoolsConfig>,
    pub bearer: Arc<BearerTokens>,
    pub backend: Arc<Backend>,
    pub metrics: Arc<Metrics>,
}

impl Introspection {
    pub async fn introspect(&self, req: &Request<'_>, now: i64) -> Reply {
        let Some(ct) = &self.commercetools else {
            return Reply::json(404, &json!({"error": "introspection is not configured"}));
        };
        if !authorized(req, ct) {
            return Reply::json(401, &json!({"error": "invalid_client"})).with_header(
                "www-authenticate",
                "Basic realm=\"sso-sidecar introspection\"",
            );
        }
        let Some(token) = form_field(req, "token").await else {
            return inactive();
        };
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let answering = self.introspection_answer(ct, &token, now);
        match tokio::time::timeout(ct.introspection_deadline, answering).await {
            Ok(Ok((answer, verified))) => {
                if let Some(verified) = verified {
                    let kept = Arc::new((answer.clone(), verified));
                    self.backend.introspections.insert(key, kept).await;
                }
                Reply::json(200, &answer)
            }
            Ok(Err(reply)) => reply,
            // commercetools waits 500 ms: a late answer is no answer.
            Err(_) => {
                // A kept answer holds only while nothing has revoked its token since
                // (a back-channel logout, the admin API, a security event).
                let cached = (self.backend.introspections.get(&key).await)
                    .filter(|kept| !self.bearer.is_revoked(&kept.1))
                    .map(|kept| kept.0.clone());
                let (answer, kind) = late_answer(cached, now);
                self.metrics.backends.count_late_introspection(kind);
                Reply::json(200, &answer)
            }
        }
    }

    /// The RFC 7662 answer for `token` and, when active, the token it describes; `Err`
    /// with the reply for an unavailable IdP.
    async fn introspection_answer(
        &self,
        ct: &CommercetoolsConfig,
        token: &str,
        now: i64,
    ) -> Result<(Value, Option<Arc<VerifiedToken>>), Reply> {
        let verified = match self.bearer.verify(token, None, now).await {
            Ok(verified) => verified,
            // commercetools should retry, not log the customer out.
            Err(error) if matches!(*error, VerifyError::Unavailable { .. }) => {
                return Err(super::refusal::token_answer(&self.bearer.refusal(&error)))
            }
            Err(_) => return Ok((json!({"active": false}), None)),
        };
        let customer = match &self.backend.commercetools {
            Some(api) => self.customer_of(api, ct, &verified).await,
            None => None,
        };
        let (scopes, dropped) = scopes(ct, &verified, customer.as_ref());
        for _ in 0..dropped {
            self.metrics.backends.scope_dropped();
        }
        Ok((active_answer(&scopes, &verified), Some(verified)))
    }

    /// The commercetools customer the token's user is, resolved by key (cached; resolved
    /// at sign-in when `sync_customers` is on).
    async fn customer_of(
        &self,
        api: &CommercetoolsApi,
        ct: &CommercetoolsConfig,
        token: &VerifiedToken,
    ) -> Option<CustomerRef> {
        let key = token
            .claim(&ct.customer_id_claim)
            .or_else(|| token.claim("sub"))?;
        match api.customer(key).await {
            Ok(customer) => customer,
            Err(error) => {
                tracing::warn!(%error, "commercetools customer lookup failed; no customer scope");
                None
            }
        }
    }
}

/// What to answer past the deadline: the token's last active answer while the token is
/// still valid, else inactive; and which of the two it was.
fn late_answer(cached: Option<Value>, now: i64) -> (Value, &'static str) {
    match cached.filter(|answer| answer["exp"].as_i64().is_some_and(|exp| exp > now)) {
        Some(answer) => (answer, "cached"),
        None => (json!({"active": false}), "inactive"),
    }
}

/// Anything not valid is simply inactive, with status 200 (RFC 7662 §2.2).
fn inactive() -> Reply {
    Reply::json(200, &json!({"active": false}))
}

fn active_answer(scopes: &[String], token: &VerifiedToken) -> Value {
    let mut answer = json!({
        "active": true,
        "scope": scopes.join(" "),
        "exp": token.expires_at,
    });
    if let Some(sub) = token.claim("sub") {
        answer["sub"] = json!(sub);
    }
    if let Some(client_id) = token.claim("client_id").or_else(|| token.claim("azp")) {
        answer["client_id"] = json!(client_id);
    }
    answer
}

/// The default scopes, the mapped ones for each value of the scope claim, the customer's
/// group's scopes and the customer scope; `{projectKey}` filled in, duplicates dropped,
/// order kept stable. With commercetools' API the customer scope carries the customer's
/// commercetools id (none for an unknown customer); without it, the claim value. Claim
/// values that are not RFC 6749 scope tokens are left out and counted (the second value):
/// `customer_id:a manage_project:shop` would otherwise grant a second scope.
fn scopes(
    ct: &CommercetoolsConfig,
    token: &VerifiedToken,
    customer: Option<&CustomerRef>,
) -> (Vec<String>, usize) {
    let mut dropped = 0;
    let mut templates: Vec<&str> = ct.default_scopes.iter().map(String::as_str).collect();
    let values: Vec<&str> = match token.claims.get(&ct.scope_claim) {
        Some(Value::String(one)) => one.split_whitespace().collect(),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    for value in values {
        if !is_scope_token(value) {
            dropped += 1;
            continue;
        }
        if let Some(mapped) = ct.scope_mapping.get(value) {
            templates.extend(mapped.iter().map(String::as_str));
        }
    }
    if let Some(group) = customer.and_then(|c| c.group.as_ref()) {
        if let Some(granted) = ct.group_scopes.get(group) {
            templates.extend(granted.iter().map(String::as_str));
        }
    }
    let mut seen = BTreeSet::new();
    let mut out: Vec<String> = templates
        .into_iter()
        .map(|t| t.replace("{projectKey}", &ct.project_key))
        .filter(|s| seen.insert(s.clone()))
        .collect();
    if ct.include_customer_id {
        let id = match (&ct.api, customer) {
            (Some(_), customer) => customer.map(|c| c.id.as_str()),
            (None, _) => token
                .claim(&ct.customer_id_claim)
                .or_else(|| token.claim("sub")),
        };
        if let Some(id) = id {
            let scope = format!("customer_id:{id}");
            if is_scope_token(&scope) {
                out.push(scope);
            } else {
                dropped += 1;
            }
        }
    }
    (out, dropped)
}

/// RFC 6749 §3.3: `scope-token = 1*( %x21 / %x23-5B / %x5D-7E )`.
fn is_scope_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b))
}

/// HTTP Basic with the configured credentials, compared in constant time.
fn authorized(req: &Request<'_>, ct: &CommercetoolsConfig) -> bool {
    let Some(value) = req
        .headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return false;
    }
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let expected = format!("{}:{}", ct.client_id, ct.client_secret.expose());
    crate::session::constant_time_eq(&decoded, expected.as_bytes())
}

/// A field of a form body, `application/x-www-form-urlencoded` or `multipart/form-data`.
async fn form_field(req: &Request<'_>, name: &str) -> Option<String> {
    let content_type = req
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if let Ok(boundary) = multer::parse_boundary(content_type) {
        let body = Bytes::copy_from_slice(req.body);
        let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) });
        let mut multipart = multer::Multipart::new(stream, boundary);
        while let Ok(Some(field)) = multipart.next_field().await {
            if field.name() == Some(name) {
                return field.text().await.ok().map(|t| t.trim().to_owned());
            }
        }
        return None;
    }
    Params::parse_bytes(req.body).get(name).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    fn ct() -> CommercetoolsConfig {
        CommercetoolsConfig {
            client_id: "ct".into(),
            client_secret: Secret::new("s3cret"),
            project_key: "shop-eu".into(),
            customer_id_claim: "oid".into(),
            include_customer_id: true,
            default_scopes: vec![
                "view_products:{projectKey}".into(),
                "manage_my_orders:{projectKey}".into(),
            ],
            scope_claim: "groups".into(),
            scope_mapping: [(
                "buyers".to_owned(),
                vec![
                    "manage_my_quote_requests:{projectKey}".to_owned(),
                    "view_products:{projectKey}".to_owned(),
                ],
            )]
            .into(),
            api: None,
            sync_customers: false,
            customer_group_claim: "groups".into(),
            customer_groups: Default::default(),
            group_scopes: [(
                "b2b".to_owned(),
                vec!["manage_my_business_units:{projectKey}".to_owned()],
            )]
            .into(),
            introspection_deadline: std::time::Duration::from_millis(400),
            anonymous_id_cookie: None,
            anonymous_cart_sign_in_mode: "MergeWithExistingCustomerCart".into(),
        }
    }

    fn token(claims: Value) -> VerifiedToken {
        let mut t = crate::oidc::access::tests_support::verified(
            "kc",
            claims.as_object().unwrap().clone(),
            100,
        );
        t.expires_at = 100;
        t
    }

    #[test]
    fn scopes_from_defaults_mapping_and_customer() {
        let t = token(json!({"sub": "s1", "oid": "o-1", "groups": ["buyers", "other"]}));
        assert_eq!(
            scopes(&ct(), &t, None).0,
            vec![
                "view_products:shop-eu",
                "manage_my_orders:shop-eu",
                "manage_my_quote_requests:shop-eu",
                "customer_id:o-1"
            ]
        );
        let t = token(json!({"sub": "s1"}));
        assert_eq!(scopes(&ct(), &t, None).0.last().unwrap(), "customer_id:s1");
        let mut no_customer = ct();
        no_customer.include_customer_id = false;
        assert_eq!(
            scopes(&no_customer, &t, None).0,
            vec!["view_products:shop-eu", "manage_my_orders:shop-eu"]
        );
    }

    /// Issue 17: with commercetools' API the customer scope is the customer's commercetools
    /// id, and the group's scopes are added; an unknown customer gets no customer scope.
    #[test]
    fn with_the_api_the_customer_scope_is_commercetools_id() {
        let mut with_api = ct();
        with_api.api = Some(crate::config::CommercetoolsApiConfig {
            url: "http://127.0.0.1:1".parse().unwrap(),
            auth_url: "http://127.0.0.1:1".parse().unwrap(),
            client_id: "api".into(),
            client_secret: Secret::new("s"),
            scopes: String::new(),
            timeout: std::time::Duration::from_secs(1),
        });
        let t = token(json!({"sub": "s1", "oid": "o-1"}));
        let customer = CustomerRef {
            id: "6b2f0c1e-uuid".into(),
            group: Some("b2b".into()),
        };
        let granted = scopes(&with_api, &t, Some(&customer)).0;
        assert_eq!(
            granted,
            vec![
                "view_products:shop-eu",
                "manage_my_orders:shop-eu",
                "manage_my_business_units:shop-eu",
                "customer_id:6b2f0c1e-uuid"
            ]
        );
        let unknown = scopes(&with_api, &t, None).0;
        assert!(unknown.iter().all(|s| !s.starts_with("customer_id:")));
    }

    #[test]
    fn late_answers_come_from_the_cache_while_the_token_lives() {
        let answer = json!({"active": true, "scope": "view_products:shop", "exp": 200});
        assert_eq!(
            late_answer(Some(answer.clone()), 150),
            (answer.clone(), "cached")
        );
        assert_eq!(
            late_answer(Some(answer), 200),
            (json!({"active": false}), "inactive")
        );
        assert_eq!(
            late_answer(None, 150),
            (json!({"active": false}), "inactive")
        );
    }

    /// Issue 14: a claim value with a space added any scope (`manage_project:…`).
    #[test]
    fn claim_values_cannot_inject_scopes() {
        let t = token(
            json!({"sub": "s1", "oid": "x manage_project:shop-eu", "groups": ["buyers\"", "a\\b"]}),
        );
        let (granted, dropped) = scopes(&ct(), &t, None);
        assert_eq!(
            granted,
            vec!["view_products:shop-eu", "manage_my_orders:shop-eu"]
        );
        assert_eq!(dropped, 3);
        assert!(granted.iter().all(|s| !s.contains("manage_project")));
        assert!(is_scope_token("customer_id:5f2c-ü".trim_end_matches('ü')));
        assert!(!is_scope_token(""));
        assert!(!is_scope_token("a b"));
        assert!(!is_scope_token("café"));
    }
}

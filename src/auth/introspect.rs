//! `/oauth2/introspect`: RFC 7662 token introspection for commercetools' external OAuth.
//! commercetools calls it with the shopper's IdP access token and reads the scopes that
//! decide what the token may do in the project.

use std::collections::BTreeSet;

use base64::Engine as _;
use bytes::Bytes;
use serde_json::{json, Value};

use super::{AuthService, Params, Request};
use crate::config::CommercetoolsConfig;
use crate::oidc::access::VerifiedToken;
use crate::oidc::verify::VerifyError;
use crate::reply::Reply;

impl AuthService {
    pub(super) async fn introspect(&self, req: &Request<'_>) -> Reply {
        let Some(ct) = &self.config.commercetools else {
            return Reply::json(404, &json!({"error": "introspection is not configured"}));
        };
        if !authorized(req, ct) {
            let mut reply = Reply::json(401, &json!({"error": "invalid_client"}));
            reply.headers.push((
                "www-authenticate",
                "Basic realm=\"sso-sidecar introspection\"".to_owned(),
            ));
            return reply;
        }
        let Some(token) = form_field(req, "token").await else {
            return inactive();
        };
        match self.verify_bearer(&token, None).await {
            Ok(verified) => {
                let (scopes, dropped) = scopes(ct, &verified);
                for _ in 0..dropped {
                    self.metrics.scope_dropped();
                }
                Reply::json(200, &active_answer(&scopes, &verified))
            }
            // commercetools should retry, not log the customer out.
            Err(error) if matches!(*error, VerifyError::Unavailable { .. }) => {
                self.bearer_refused(&error)
            }
            Err(_) => inactive(),
        }
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

/// The default scopes, the mapped ones for each value of the scope claim, and the
/// customer scope; `{projectKey}` filled in, duplicates dropped, order kept stable. Claim
/// values that are not RFC 6749 scope tokens are left out and counted (the second value):
/// `customer_id:a manage_project:shop` would otherwise grant a second scope.
fn scopes(ct: &CommercetoolsConfig, token: &VerifiedToken) -> (Vec<String>, usize) {
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
    let mut seen = BTreeSet::new();
    let mut out: Vec<String> = templates
        .into_iter()
        .map(|t| t.replace("{projectKey}", &ct.project_key))
        .filter(|s| seen.insert(s.clone()))
        .collect();
    if ct.include_customer_id {
        if let Some(customer) = token
            .claim(&ct.customer_id_claim)
            .or_else(|| token.claim("sub"))
        {
            let scope = format!("customer_id:{customer}");
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
    decoded.len() == expected.len()
        && decoded
            .iter()
            .zip(expected.as_bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
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
            scopes(&ct(), &t).0,
            vec![
                "view_products:shop-eu",
                "manage_my_orders:shop-eu",
                "manage_my_quote_requests:shop-eu",
                "customer_id:o-1"
            ]
        );
        let t = token(json!({"sub": "s1"}));
        assert_eq!(scopes(&ct(), &t).0.last().unwrap(), "customer_id:s1");
        let mut no_customer = ct();
        no_customer.include_customer_id = false;
        assert_eq!(
            scopes(&no_customer, &t).0,
            vec!["view_products:shop-eu", "manage_my_orders:shop-eu"]
        );
    }

    /// Issue 14: a claim value with a space added any scope (`manage_project:…`).
    #[test]
    fn claim_values_cannot_inject_scopes() {
        let t = token(
            json!({"sub": "s1", "oid": "x manage_project:shop-eu", "groups": ["buyers\"", "a\\b"]}),
        );
        let (granted, dropped) = scopes(&ct(), &t);
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

//! One verifier for every JWT an IdP issues: ID tokens at the callback, bearer access
//! tokens on `api` routes and for introspection, and back-channel logout tokens. Each use
//! gets the same key handling (one refetch on an unknown `kid`, rate-limited by the
//! registry), the IdP's configured algorithms, issuer, audience and time checks with skew,
//! plus the rules that keep one kind of token from passing as another.
//!
//! Errors separate what is wrong with the token ([`Invalid`], safe to cache as a refusal)
//! from what is wrong with our view of the IdP ([`VerifyError::UnknownKey`],
//! [`VerifyError::Unavailable`]), which must never be cached: the same token may be fine a
//! moment later.

use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::registry::{Discovered, Provider, Registry};
use crate::jwt::jwt_part;

/// What a token is being verified as.
#[derive(Debug, Clone, Copy)]
pub enum TokenUse<'a> {
    /// At the callback, for the sign-in that sent `nonce`; `None` for the ID token of a
    /// refresh, which carries no nonce of ours (OpenID Connect Core §12.2).
    Id { nonce: Option<&'a str> },
    /// `Authorization: Bearer` on an `api` route or at `/oauth2/introspect`.
    Access,
    /// Back-channel logout (the logout-specific claims are checked by the caller).
    Logout,
}

/// Why a token is not valid. A fixed set: refusals are cached and shown to clients, and
/// neither may carry text from the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    #[error("the token is malformed")]
    Malformed,
    #[error("the token's issuer is not a configured identity provider")]
    UnknownIssuer,
    #[error("the token's algorithm is not accepted for this identity provider")]
    Algorithm,
    #[error("unsigned tokens are not accepted")]
    Unsigned,
    #[error("the token's signature is invalid")]
    Signature,
    #[error("the token is not meant for this audience")]
    Audience,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet")]
    NotYetValid,
    #[error("the token was issued in the future")]
    IssuedInFuture,
    #[error("the token lacks a required claim")]
    MissingClaim,
    #[error("the token's nonce does not belong to this sign-in")]
    Nonce,
    #[error("the token was issued to another client")]
    AuthorizedParty,
    #[error("the token is not an access token")]
    NotAnAccessToken,
    #[error("the token has been revoked")]
    Revoked,
    #[error("the token is not active")]
    NotActive,
    #[error("the token names no key and the identity provider has several that fit")]
    AmbiguousKey,
}

impl Invalid {
    /// The label for metrics and logs.
    pub fn code(self) -> &'static str {
        match self {
            Invalid::Malformed => "malformed",
            Invalid::UnknownIssuer => "unknown_issuer",
            Invalid::Algorithm => "algorithm",
            Invalid::Unsigned => "unsigned",
            Invalid::Signature => "bad_signature",
            Invalid::Audience => "wrong_audience",
            Invalid::Expired => "expired",
            Invalid::NotYetValid => "not_yet_valid",
            Invalid::IssuedInFuture => "issued_in_future",
            Invalid::MissingClaim => "missing_claim",
            Invalid::Nonce => "nonce",
            Invalid::AuthorizedParty => "azp",
            Invalid::NotAnAccessToken => "not_an_access_token",
            Invalid::Revoked => "revoked",
            Invalid::NotActive => "not_active",
            Invalid::AmbiguousKey => "ambiguous_key",
        }
    }
}

/// Why our view of the IdP does not allow a decision right now.
#[derive(Debug, thiserror::Error)]
pub enum Unavailable {
    #[error("its keys are not loaded yet")]
    KeysNotLoaded,
    #[error("introspection failed")]
    Introspection(#[source] Box<dyn std::error::Error + Send + Sync>),
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Not even after one refetch of the IdP's keys (or the refetch was rate-limited).
    #[error("the token is signed with a key the identity provider does not publish")]
    UnknownKey,
    #[error("the identity provider {idp} cannot be asked right now")]
    Unavailable {
        idp: String,
        #[source]
        cause: Unavailable,
    },
}

impl VerifyError {
    pub fn unavailable(idp: &str, cause: Unavailable) -> Self {
        VerifyError::Unavailable {
            idp: idp.to_owned(),
            cause,
        }
    }
}

/// A token whose signature and claims passed.
#[derive(Clone)]
pub struct VerifiedJwt {
    /// Every IdP entry the token is valid for, in config order: entries that share an
    /// issuer (the ICM example's `oidc_kc_1` and `oidc_kc_2`) all count.
    pub providers: Vec<Arc<Provider>>,
    pub claims: Map<String, Value>,
}

#[derive(Debug, Clone, Copy)]
pub struct Checks {
    pub skew: Duration,
    /// `oidc.accept_unsigned_tokens`: `alg: none` passes the claim checks only.
    pub accept_unsigned: bool,
}

/// Verifies `token` as `usage`. `candidates` are the IdP entries it may come from (the
/// sign-in's for an ID token); `None` means any entry with the token's issuer.
pub async fn verify_jwt(
    registry: &Registry,
    token: &str,
    usage: TokenUse<'_>,
    candidates: Option<&[Arc<Provider>]>,
    checks: Checks,
    now: i64,
) -> Result<VerifiedJwt, VerifyError> {
    let header = jwt_part(token, 0).ok_or(Invalid::Malformed)?;
    let unverified = jwt_part(token, 1).ok_or(Invalid::Malformed)?;
    let issuer = unverified
        .get("iss")
        .and_then(Value::as_str)
        .ok_or(Invalid::MissingClaim)?;
    let same_issuer: Vec<Arc<Provider>> = match candidates {
        Some(list) => list
            .iter()
            .filter(|p| p.config.issuer == issuer)
            .cloned()
            .collect(),
        None => registry.all_by_issuer(issuer).cloned().collect(),
    };
    if same_issuer.is_empty() {
        return Err(Invalid::UnknownIssuer.into());
    }
    // The entries the audience speaks for; entries of one issuer share its keys.
    let providers: Vec<Arc<Provider>> = same_issuer
        .into_iter()
        .filter(|p| audience_matches(&unverified, &accepted_audiences(p, usage)))
        .collect();
    let Some(first) = providers.first() else {
        return Err(Invalid::Audience.into());
    };
    check_token_type(&header, &unverified, usage, first)?;
    let claims = match header.get("alg").and_then(Value::as_str) {
        Some("none") if checks.accept_unsigned && !matches!(usage, TokenUse::Logout) => unverified,
        Some("none") => return Err(Invalid::Unsigned.into()),
        Some(alg) => {
            let alg: Algorithm = alg.parse().map_err(|_| Invalid::Algorithm)?;
            if !first.config.algorithms.contains(&alg) {
                return Err(Invalid::Algorithm.into());
            }
            let kid = header.get("kid").and_then(Value::as_str);
            let discovered = first
                .discovered()
                .ok_or_else(|| VerifyError::unavailable(&first.key, Unavailable::KeysNotLoaded))?;
            match check_signature(&discovered, token, alg, kid) {
                Err(VerifyError::UnknownKey) => match registry.refetch_keys(first).await {
                    Some(fresh) => check_signature(&fresh, token, alg, kid)?,
                    None => return Err(VerifyError::UnknownKey),
                },
                other => other?,
            }
        }
        None => return Err(Invalid::Malformed.into()),
    };
    check_times(&claims, usage, checks.skew, now)?;
    if let TokenUse::Id { nonce } = usage {
        check_id_token(&claims, nonce, &first.config.client_id)?;
    }
    Ok(VerifiedJwt { providers, claims })
}

fn accepted_audiences(provider: &Provider, usage: TokenUse<'_>) -> Vec<String> {
    match usage {
        TokenUse::Access => provider.config.audiences.clone(),
        TokenUse::Id { .. } | TokenUse::Logout => vec![provider.config.client_id.clone()],
    }
}

fn audience_matches(claims: &Map<String, Value>, accepted: &[String]) -> bool {
    match claims.get("aud") {
        Some(Value::String(aud)) => accepted.iter().any(|a| a == aud),
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .any(|aud| accepted.iter().any(|a| a == aud)),
        _ => false,
    }
}

/// Keeps ID and logout tokens from passing as access tokens and the reverse: ID tokens
/// leak (`id_token_hint` in logout URLs, the Spree exchange) and share the access token's
/// default audience, the client id.
fn check_token_type(
    header: &Map<String, Value>,
    claims: &Map<String, Value>,
    usage: TokenUse<'_>,
    provider: &Provider,
) -> Result<(), Invalid> {
    let typ = header
        .get("typ")
        .and_then(Value::as_str)
        .map(|t| t.trim_start_matches("application/").to_ascii_lowercase());
    let typ = typ.as_deref();
    match usage {
        TokenUse::Access => {
            let id_token_claims = ["nonce", "at_hash", "c_hash", "events"];
            if id_token_claims.iter().any(|c| claims.contains_key(*c))
                || matches!(typ, Some("logout+jwt" | "id_token+jwt" | "id+jwt"))
            {
                return Err(Invalid::NotAnAccessToken);
            }
            if provider.config.access_token_type.as_deref() == Some("at+jwt")
                && typ != Some("at+jwt")
            {
                return Err(Invalid::NotAnAccessToken);
            }
        }
        TokenUse::Id { .. } | TokenUse::Logout => {
            if matches!(typ, Some("at+jwt")) {
                return Err(Invalid::Malformed);
            }
            if matches!(usage, TokenUse::Id { .. }) && typ == Some("logout+jwt") {
                return Err(Invalid::Malformed);
            }
        }
    }
    Ok(())
}

/// The signature with the IdP's key named by `kid`, or, when the token names none, the one
/// key that fits its `alg` (OpenID Connect Core §10.1: a JWKS may also hold encryption keys
/// and keys of other types). Claims are checked by [`check_times`] and the callers, the
/// same way for all.
fn check_signature(
    discovered: &Discovered,
    token: &str,
    alg: Algorithm,
    kid: Option<&str>,
) -> Result<Map<String, Value>, VerifyError> {
    let jwk = match kid {
        Some(kid) => discovered.jwks.find(kid),
        None => {
            let mut fitting = discovered.jwks.keys.iter().filter(|k| signs_with(k, alg));
            match (fitting.next(), fitting.next()) {
                (Some(only), None) => Some(only),
                // Which one signed is a guess; a guess is not a verification.
                (Some(_), Some(_)) => return Err(Invalid::AmbiguousKey.into()),
                (None, _) => None,
            }
        }
    }
    .ok_or(VerifyError::UnknownKey)?;
    let key = DecodingKey::from_jwk(jwk).map_err(|_| Invalid::Algorithm)?;
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_aud = false;
    validation.set_required_spec_claims::<&str>(&[]);
    jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::InvalidSignature => Invalid::Signature,
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => Invalid::Algorithm,
                _ => Invalid::Malformed,
            }
            .into()
        })
}

/// Whether `jwk` can verify a signature made with `alg`: a signing key (`use` absent or
/// `sig`) of the algorithm's key type and curve, whose own `alg`, when given, is this one.
fn signs_with(jwk: &jsonwebtoken::jwk::Jwk, alg: Algorithm) -> bool {
    use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, PublicKeyUse};
    let for_signing = matches!(
        jwk.common.public_key_use,
        None | Some(PublicKeyUse::Signature)
    );
    let same_alg = jwk
        .common
        .key_algorithm
        .is_none_or(|declared| declared.to_string() == format!("{alg:?}"));
    let fits_type = match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA) => true,
        _ => false,
    };
    for_signing && same_alg && fits_type
}

/// `exp` (required but for logout tokens), `nbf` and `iat` against the clock with skew;
/// saturating, as the values come from the IdP.
fn check_times(
    claims: &Map<String, Value>,
    usage: TokenUse<'_>,
    skew: Duration,
    now: i64,
) -> Result<(), Invalid> {
    let skew = crate::config::whole_secs(skew);
    let number = |name: &str| claims.get(name).and_then(Value::as_i64);
    match number("exp") {
        Some(exp) if exp.saturating_add(skew) < now => return Err(Invalid::Expired),
        Some(_) => {}
        None if matches!(usage, TokenUse::Logout) => {}
        None => return Err(Invalid::MissingClaim),
    }
    if number("nbf").is_some_and(|nbf| nbf > now.saturating_add(skew)) {
        return Err(Invalid::NotYetValid);
    }
    match number("iat") {
        Some(iat) if iat > now.saturating_add(skew) => Err(Invalid::IssuedInFuture),
        Some(_) => Ok(()),
        None if matches!(usage, TokenUse::Access) => Ok(()),
        None => Err(Invalid::MissingClaim),
    }
}

/// OpenID Connect Core §3.1.3.7: the nonce of this sign-in, and `azp` when present or when
/// there are several audiences.
fn check_id_token(
    claims: &Map<String, Value>,
    nonce: Option<&str>,
    client_id: &str,
) -> Result<(), Invalid> {
    if nonce.is_some_and(|nonce| claims.get("nonce").and_then(Value::as_str) != Some(nonce)) {
        return Err(Invalid::Nonce);
    }
    if claims
        .get("sub")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(Invalid::MissingClaim);
    }
    let several = matches!(claims.get("aud"), Some(Value::Array(list)) if list.len() > 1);
    match claims.get("azp").and_then(Value::as_str) {
        Some(azp) if azp != client_id => Err(Invalid::AuthorizedParty),
        None if several => Err(Invalid::AuthorizedParty),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn times_saturate_and_respect_skew() {
        let now = chrono::Utc::now().timestamp();
        let skew = Duration::from_secs(60);
        let ok = map(json!({"exp": now + 10, "iat": now}));
        assert_eq!(check_times(&ok, TokenUse::Access, skew, now), Ok(()));
        let expired = map(json!({"exp": now - 61, "iat": now - 100}));
        assert_eq!(
            check_times(&expired, TokenUse::Access, skew, now),
            Err(Invalid::Expired)
        );
        let within_skew = map(json!({"exp": now - 30, "iat": now - 100}));
        assert_eq!(
            check_times(&within_skew, TokenUse::Access, skew, now),
            Ok(())
        );
        let huge = map(json!({"exp": i64::MAX, "iat": i64::MIN, "nbf": i64::MIN}));
        assert_eq!(
            check_times(&huge, TokenUse::Access, Duration::MAX, now),
            Ok(())
        );
        let future = map(json!({"exp": now + 10, "iat": now + 3600}));
        assert_eq!(
            check_times(&future, TokenUse::Logout, skew, now),
            Err(Invalid::IssuedInFuture)
        );
        assert_eq!(
            check_times(&map(json!({"iat": now})), TokenUse::Access, skew, now),
            Err(Invalid::MissingClaim),
            "access tokens need exp"
        );
        assert_eq!(
            check_times(&map(json!({"iat": now})), TokenUse::Logout, skew, now),
            Ok(())
        );
    }

    #[test]
    fn id_token_rules() {
        let good = map(json!({"sub": "u", "nonce": "n", "aud": "shop"}));
        assert_eq!(check_id_token(&good, Some("n"), "shop"), Ok(()));
        assert_eq!(
            check_id_token(&good, Some("other"), "shop"),
            Err(Invalid::Nonce)
        );
        assert_eq!(
            check_id_token(&good, None, "shop"),
            Ok(()),
            "a refresh's ID token"
        );
        let several = map(json!({"sub": "u", "nonce": "n", "aud": ["shop", "x"]}));
        assert_eq!(
            check_id_token(&several, Some("n"), "shop"),
            Err(Invalid::AuthorizedParty)
        );
        let azp = map(json!({"sub": "u", "nonce": "n", "aud": ["shop", "x"], "azp": "shop"}));
        assert_eq!(check_id_token(&azp, Some("n"), "shop"), Ok(()));
    }

    #[test]
    fn audiences() {
        let accepted = vec!["api://shop".to_owned()];
        assert!(audience_matches(
            &map(json!({"aud": "api://shop"})),
            &accepted
        ));
        assert!(audience_matches(
            &map(json!({"aud": ["x", "api://shop"]})),
            &accepted
        ));
        assert!(!audience_matches(&map(json!({"aud": "shop"})), &accepted));
        assert!(!audience_matches(&map(json!({})), &accepted));
    }

    #[test]
    fn codes_are_fixed_text() {
        for invalid in [
            Invalid::Malformed,
            Invalid::Algorithm,
            Invalid::NotAnAccessToken,
        ] {
            assert!(invalid
                .code()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_'));
            assert!(!invalid.to_string().is_empty());
        }
    }
}

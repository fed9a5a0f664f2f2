//! Why a request on a protected route does not pass as it came, and the one place that
//! turns that into an answer for the route's kind and the caller: a browser navigating is
//! sent to sign in (or shown a page), a program gets a status code, an `optional` route
//! lets a visitor through. Every refusal of the gate goes through [`answer`].

use serde_json::json;

use super::links::SignInLinks;
use super::step_up::Challenge;
use super::Gate;
use crate::caller::Caller;
use crate::pages;
use crate::reply::Reply;
use crate::routing::RouteKind;
use crate::session::Rejection;

/// What is missing or wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No session, or a cookie that was not accepted.
    NotSignedIn(Rejection),
    /// Signed in, but for another organization than the one the route pins. The session
    /// stays: it is good where it belongs.
    OtherOrganization,
    /// The session is over (revoked, refused at refresh, no longer a member, refused by
    /// the backend, remote sign-ins turned off): its cookies go.
    SessionOver,
    /// The tokens ran out and the session's IdP cannot renew them: the cookies go, and a
    /// browser is told that the IdP is down.
    IdpUnreachable { organization: String },
    /// A form another site posted: never replayed with the user's identity.
    CrossSiteForm,
    /// Signed in, and the route's `allow` rules do not admit `who`.
    Forbidden { who: String },
    /// Signed in, but not strongly or recently enough for the route (or the backend):
    /// sign in again at the session's IdP as `challenge` asks.
    StepUp {
        challenge: Challenge,
        organization: String,
        identity_provider: String,
    },
    /// A bearer token that is not good here (RFC 6750 `invalid_token`), and why.
    TokenInvalid { description: String },
    /// A bearer token whose IdP cannot be asked now: the client should retry.
    TokenUncheckable,
    /// A bearer token whose user the route's `allow` rules do not admit.
    InsufficientScope,
}

impl Refusal {
    /// True when the session cookies this request carries go with the answer.
    fn clears_cookies(&self, kind: RouteKind) -> bool {
        match self {
            Refusal::SessionOver | Refusal::IdpUnreachable { .. } => true,
            // A stale cookie on a page a visitor may see goes; a store outage is no
            // reason to forget one, and a sign-in replaces it anyway.
            Refusal::NotSignedIn(rejection) => {
                kind == RouteKind::Optional
                    && !matches!(rejection, Rejection::Missing | Rejection::Unavailable)
            }
            Refusal::OtherOrganization
            | Refusal::CrossSiteForm
            | Refusal::Forbidden { .. }
            | Refusal::StepUp { .. }
            | Refusal::TokenInvalid { .. }
            | Refusal::TokenUncheckable
            | Refusal::InsufficientScope => false,
        }
    }

    /// The audit log's reason when this refusal denies someone (a person or token the
    /// gate knows, or a forged form), rather than asking them to sign in.
    pub fn denial(&self) -> Option<&'static str> {
        match self {
            Refusal::OtherOrganization => Some("other_organization"),
            Refusal::CrossSiteForm => Some("cross_site_form"),
            Refusal::Forbidden { .. } => Some("forbidden"),
            Refusal::TokenInvalid { .. } => Some("token_invalid"),
            Refusal::InsufficientScope => Some("insufficient_scope"),
            Refusal::NotSignedIn(_)
            | Refusal::SessionOver
            | Refusal::IdpUnreachable { .. }
            | Refusal::StepUp { .. }
            | Refusal::TokenUncheckable => None,
        }
    }

    /// RFC 6750's `error` for a `401`: none when no credentials came at all.
    fn bearer_error(&self) -> Option<&'static str> {
        match self {
            Refusal::NotSignedIn(Rejection::Missing) => None,
            _ => Some("invalid_token"),
        }
    }
}

/// Where and by whom the refused request was made.
pub struct Refused<'a> {
    pub kind: RouteKind,
    /// The organization the route pins, for the sign-in link.
    pub pinned_org: Option<&'a str>,
    pub caller: Caller,
    /// Where to come back to after signing in.
    pub path_and_query: &'a str,
    pub request_id: &'a str,
    /// An ingress asks (`/oauth2/auth`): sign-ins are `401` unless it wants redirects,
    /// and the way back is the original request's whole URL.
    pub forward_auth: Option<super::ForwardAuth<'a>>,
}

/// The answer to `refusal`; `clear` gives the `Set-Cookie`s that end the request's
/// session cookies, and is called only when the answer ends them.
pub fn answer(
    refusal: Refusal,
    at: &Refused<'_>,
    links: &SignInLinks,
    clear: impl FnOnce() -> Vec<String>,
) -> Gate {
    let cookies = match refusal.clears_cookies(at.kind) {
        true => clear(),
        false => Vec::new(),
    };
    let return_to = at.forward_auth.map_or(at.path_and_query, |asked| asked.url);
    let sign_in = |org: Option<&str>| links.sign_in(return_to, org);
    let reply = match (&refusal, at.kind, at.caller) {
        // Bearer tokens: programs on `api` routes, whatever they ask for.
        (
            Refusal::TokenInvalid { .. } | Refusal::TokenUncheckable | Refusal::InsufficientScope,
            ..,
        ) => token_answer(&refusal),
        // Nobody gets a redirect for a `403`: it would only bring them back here.
        (Refusal::Forbidden { who }, _, Caller::Navigation) => {
            Reply::page(403, pages::forbidden(who, links.logout(), at.request_id))
        }
        (Refusal::Forbidden { .. }, _, Caller::Program) => {
            Reply::json(403, &json!({"error": "forbidden"}))
        }
        // Programs learn what is missing (RFC 9470) and cannot follow a sign-in.
        (Refusal::StepUp { challenge, .. }, _, Caller::Program)
        | (Refusal::StepUp { challenge, .. }, RouteKind::Api, _) => {
            Reply::insufficient_user_authentication(challenge.www_authenticate())
        }
        (
            Refusal::StepUp {
                challenge,
                organization,
                identity_provider,
            },
            _,
            Caller::Navigation,
        ) => Reply::redirect(&links.step_up(return_to, organization, identity_provider, challenge)),
        // A visitor may see an `optional` page: forwarded without identity.
        (_, RouteKind::Optional, _) => {
            return Gate::Anonymous {
                set_cookies: cookies,
            }
        }
        // The sign-in goes on, and the browser lands on the page by `GET`.
        (Refusal::CrossSiteForm, _, _) => Reply::see_other(&sign_in(at.pinned_org)),
        (Refusal::IdpUnreachable { organization }, RouteKind::Required, Caller::Navigation) => {
            let retry = sign_in(Some(organization));
            Reply::page(503, pages::idp_unreachable(&retry, at.request_id))
        }
        (_, RouteKind::Required, Caller::Navigation) => Reply::redirect(&sign_in(at.pinned_org)),
        _ => Reply::unauthorized(refusal.bearer_error()),
    };
    // nginx's `auth_request` knows 2xx, 401 and 403 only: a sign-in is its `401`, and
    // its own `error_page` sends the browser on.
    // The sign-in link goes along (`X-SSO-Sign-In`) for nginx's `error_page` to send the
    // browser to: nginx cannot URL-encode the way back itself.
    let reply = match at.forward_auth {
        Some(asked) if !asked.redirect && (300..400).contains(&reply.status) => {
            let sign_in = (reply.headers.iter())
                .find(|(name, _)| *name == "location")
                .map(|(_, location)| location.clone());
            let answer = match &refusal {
                Refusal::StepUp { challenge, .. } => {
                    Reply::insufficient_user_authentication(challenge.www_authenticate())
                }
                _ => Reply::unauthorized(refusal.bearer_error()),
            };
            match sign_in {
                Some(link) => answer.with_header(SIGN_IN_HEADER, link),
                None => answer,
            }
        }
        _ => reply,
    };
    Gate::Deny(reply.with_cookies(cookies))
}

/// Where a forward-auth `401` says the browser signs in.
pub const SIGN_IN_HEADER: &str = "x-sso-sign-in";

/// The answer to a refused bearer token (also at `/oauth2/introspect`).
pub fn token_answer(refusal: &Refusal) -> Reply {
    match refusal {
        Refusal::TokenInvalid { description } => {
            Reply::unauthorized_with(Some("invalid_token"), Some(description))
        }
        Refusal::TokenUncheckable => Reply::temporarily_unavailable(RETRY_AFTER_SECS),
        Refusal::InsufficientScope => Reply::json(403, &json!({"error": "insufficient_scope"}))
            .with_header(
                "www-authenticate",
                "Bearer realm=\"sso-sidecar\", error=\"insufficient_scope\"",
            ),
        _ => Reply::unauthorized(refusal.bearer_error()),
    }
}

/// How long a client should wait when an IdP could not be asked.
const RETRY_AFTER_SECS: u32 = 5;

#[cfg(test)]
mod tests {
    //! The whole table: each refusal for each route kind and caller.

    use super::*;

    const CLEARED: &str = "sso=; Max-Age=0";

    fn answered(refusal: Refusal, kind: RouteKind, caller: Caller) -> (u16, Vec<String>) {
        let at = Refused {
            kind,
            pinned_org: Some("Ops"),
            caller,
            path_and_query: "/account",
            request_id: "r1",
            forward_auth: None,
        };
        let links = SignInLinks::new("/oauth2");
        match answer(refusal, &at, &links, || vec![CLEARED.to_owned()]) {
            Gate::Deny(reply) => {
                let headers = reply.headers.iter();
                let shown = headers
                    .filter(|(n, _)| *n == "location" || *n == "set-cookie")
                    .map(|(n, v)| format!("{n}: {v}"))
                    .collect();
                (reply.status, shown)
            }
            Gate::Anonymous { set_cookies } => (0, set_cookies),
            _ => panic!("a refusal never forwards"),
        }
    }

    #[test]
    fn browsers_sign_in_programs_get_401_visitors_pass() {
        use Caller::*;
        use RouteKind::*;
        let missing = || Refusal::NotSignedIn(Rejection::Missing);
        let login = "location: /oauth2/start?rd=%2Faccount&org=Ops".to_owned();
        assert_eq!(
            answered(missing(), Required, Navigation),
            (302, vec![login])
        );
        assert_eq!(answered(missing(), Required, Program), (401, vec![]));
        assert_eq!(answered(missing(), Api, Navigation), (401, vec![]));
        assert_eq!(answered(missing(), Optional, Navigation), (0, vec![]));
        // A stale cookie is cleared where a visitor goes on without it.
        let expired = || Refusal::NotSignedIn(Rejection::Expired);
        assert_eq!(
            answered(expired(), Optional, Program),
            (0, vec![CLEARED.into()])
        );
        assert_eq!(
            answered(expired(), Required, Program).1,
            Vec::<String>::new()
        );
        let cleared = format!("set-cookie: {CLEARED}");
        let over = answered(Refusal::SessionOver, Required, Navigation);
        assert_eq!(over.0, 302);
        assert!(over.1.contains(&cleared), "{over:?}");
        assert_eq!(
            answered(Refusal::SessionOver, Api, Program),
            (401, vec![cleared])
        );
        assert_eq!(
            answered(Refusal::OtherOrganization, Optional, Navigation),
            (0, vec![])
        );
    }

    #[test]
    fn pages_for_what_a_sign_in_cannot_fix() {
        use Caller::*;
        use RouteKind::*;
        let down = || Refusal::IdpUnreachable {
            organization: "Sales".into(),
        };
        assert_eq!(answered(down(), Required, Navigation).0, 503);
        assert_eq!(answered(down(), Required, Program).0, 401);
        assert_eq!(answered(down(), Optional, Navigation).0, 0);
        let forbidden = || Refusal::Forbidden { who: "ann".into() };
        assert_eq!(answered(forbidden(), Required, Navigation), (403, vec![]));
        assert_eq!(answered(forbidden(), Optional, Program), (403, vec![]));
        let step_up = || Refusal::StepUp {
            challenge: Challenge {
                acr_values: vec!["urn:mfa".into()],
                max_age: None,
            },
            organization: "Ops".into(),
            identity_provider: "kc".into(),
        };
        let to_idp = "location: /oauth2/start?rd=%2Faccount&org=Ops&idp=kc&acr_values=urn%3Amfa";
        assert_eq!(
            answered(step_up(), Required, Navigation),
            (302, vec![to_idp.into()])
        );
        assert_eq!(answered(step_up(), Required, Program), (401, vec![]));
        assert_eq!(answered(step_up(), Api, Navigation), (401, vec![]));
        let (status, headers) = answered(Refusal::CrossSiteForm, Required, Program);
        assert_eq!(status, 303);
        assert_eq!(headers, ["location: /oauth2/start?rd=%2Faccount&org=Ops"]);
    }
}

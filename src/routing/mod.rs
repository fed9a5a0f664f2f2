//! Which rule applies to a request: the sidecar's own endpoints, or the first `[[routes]]`
//! entry whose host and path prefix match. Routing is always on the canonical path
//! ([`canonical`]) and host ([`crate::host`]), the ones the upstream will serve.

pub mod canonical;

use crate::config::{AuthMode, ClaimRule, Route};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    Public = 0,
    Required = 1,
    Api = 2,
    /// The sidecar's own endpoints under `/oauth2`.
    Sidecar = 3,
    Optional = 4,
}

impl RouteKind {
    pub const ALL: [RouteKind; 5] = [
        RouteKind::Public,
        RouteKind::Required,
        RouteKind::Api,
        RouteKind::Sidecar,
        RouteKind::Optional,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RouteKind::Public => "public",
            RouteKind::Required => "required",
            RouteKind::Api => "api",
            RouteKind::Sidecar => "sidecar",
            RouteKind::Optional => "optional",
        }
    }
}

impl From<AuthMode> for RouteKind {
    fn from(mode: AuthMode) -> Self {
        match mode {
            AuthMode::Public => RouteKind::Public,
            AuthMode::Optional => RouteKind::Optional,
            AuthMode::Required => RouteKind::Required,
            AuthMode::Api => RouteKind::Api,
        }
    }
}

/// The outcome of routing one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Matched<'a> {
    pub kind: RouteKind,
    /// Set when the route pins the organization (back office → Operations).
    pub organization: Option<&'a str>,
    /// Who may pass (`routes[].allow`); empty: anyone signed in.
    pub allow: &'a [ClaimRule],
    /// The route's path prefix, for metrics; empty when no route matched.
    pub label: &'a str,
    pub preflight: crate::config::Preflight,
    /// How strong and recent the sign-in must be (`routes[].acr_values`, `max_age`).
    pub step_up: Option<&'a crate::config::StepUp>,
}

impl Matched<'_> {
    const fn unrouted(kind: RouteKind) -> Self {
        Matched {
            kind,
            organization: None,
            allow: &[],
            label: "",
            preflight: crate::config::Preflight::Forward,
            step_up: None,
        }
    }
}

pub struct Router {
    routes: Vec<Route>,
    own_prefix: String,
}

impl Router {
    pub fn new(routes: Vec<Route>, own_prefix: &str) -> Self {
        Router {
            routes,
            own_prefix: own_prefix.to_owned(),
        }
    }

    /// Routes a request by its canonical host name ([`crate::host::CanonicalHost::name`]) and
    /// path; paths without a matching route are treated as `required`, so a gap in the
    /// table never exposes a page.
    pub fn route(&self, host: &str, path: &str) -> Matched<'_> {
        let path = &*canonical::routing_path(path);
        if self.is_own(path) {
            return Matched::unrouted(RouteKind::Sidecar);
        }
        // Configured hosts are stored canonical too (config validation), so bytes compare.
        self.routes
            .iter()
            .find(|r| {
                path.starts_with(&r.path_prefix)
                    && r.host.as_deref().is_none_or(|want| want == host)
            })
            .map(|r| Matched {
                kind: r.auth.into(),
                organization: r.organization.as_deref(),
                allow: &r.allow,
                label: &r.path_prefix,
                preflight: r.preflight,
                step_up: r.step_up.as_ref(),
            })
            .unwrap_or(Matched::unrouted(RouteKind::Required))
    }

    /// The sidecar's own endpoint (`/oauth2/...`) this path names, without the prefix.
    pub fn own_endpoint<'p>(&self, path: &'p str) -> Option<&'p str> {
        let rest = path.strip_prefix(&self.own_prefix)?;
        (rest.is_empty() || rest.starts_with('/')).then_some(rest)
    }

    /// Which of the sidecar's own endpoints this (routing) path names.
    pub fn endpoint(&self, path: &str) -> Option<Endpoint> {
        self.own_endpoint(path).map(Endpoint::named)
    }

    fn is_own(&self, path: &str) -> bool {
        self.own_endpoint(path).is_some()
    }
}

/// The sidecar's own endpoints, under `oidc.path_prefix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Start,
    Callback,
    Userinfo,
    Logout,
    BackchannelLogout,
    /// OpenID Connect Front-Channel Logout 1.0: the IdP's page frames it.
    FrontchannelLogout,
    Introspect,
    Jwks,
    /// Forward-auth: an ingress asks about a request ([`crate::forward_auth`]).
    Auth,
    /// The public keys of `private_key_jwt` client assertions, for IdPs that fetch them.
    ClientJwks,
    /// The signed-in person's sessions, to see and end (`/oauth2/sessions`).
    Sessions,
    /// Shared Signals events pushed by a transmitter (RFC 8935).
    SsfEvents,
    /// `pages.stylesheet`, for the sidecar's own pages.
    Stylesheet,
    /// Under the prefix, but no endpoint of ours: `404`.
    Unknown,
}

impl Endpoint {
    /// `rest` is the path after the prefix, e.g. `/start`.
    fn named(rest: &str) -> Self {
        match rest {
            "/start" => Endpoint::Start,
            "/callback" => Endpoint::Callback,
            "/userinfo" => Endpoint::Userinfo,
            "/logout" => Endpoint::Logout,
            "/backchannel-logout" => Endpoint::BackchannelLogout,
            "/frontchannel-logout" => Endpoint::FrontchannelLogout,
            "/introspect" => Endpoint::Introspect,
            "/jwks" => Endpoint::Jwks,
            "/auth" => Endpoint::Auth,
            "/pages.css" => Endpoint::Stylesheet,
            "/sessions" => Endpoint::Sessions,
            "/ssf/events" => Endpoint::SsfEvents,
            "/client-jwks" => Endpoint::ClientJwks,
            _ => Endpoint::Unknown,
        }
    }

    /// The endpoints that start or finish a sign-in, which are rate-limited per client.
    pub fn signs_in(self) -> bool {
        matches!(self, Endpoint::Start | Endpoint::Callback)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(host: Option<&str>, prefix: &str, auth: AuthMode, org: Option<&str>) -> Route {
        Route {
            host: host.map(str::to_owned),
            path_prefix: prefix.to_owned(),
            auth,
            organization: org.map(str::to_owned),
            allow: Vec::new(),
            preflight: Default::default(),
            step_up: None,
        }
    }

    fn router() -> Router {
        Router::new(
            vec![
                route(None, "/static/", AuthMode::Public, None),
                route(
                    Some("admin.shop.example"),
                    "/",
                    AuthMode::Required,
                    Some("Operations"),
                ),
                route(None, "/api/", AuthMode::Api, None),
                route(
                    None,
                    "/INTERSHOP/web/WFS/SLDSystem",
                    AuthMode::Required,
                    Some("Operations"),
                ),
                route(None, "/", AuthMode::Public, None),
            ],
            "/oauth2",
        )
    }

    #[test]
    fn first_match_wins() {
        let r = router();
        assert_eq!(
            r.route("shop.example", "/static/app.css").kind,
            RouteKind::Public
        );
        assert_eq!(r.route("shop.example", "/api/orders").kind, RouteKind::Api);
        let m = r.route(
            "shop.example",
            "/INTERSHOP/web/WFS/SLDSystem/en_US/-/USD/Login",
        );
        assert_eq!(m.kind, RouteKind::Required);
        assert_eq!(m.organization, Some("Operations"));
        assert_eq!(m.label, "/INTERSHOP/web/WFS/SLDSystem");
        assert_eq!(r.route("shop.example", "/home").kind, RouteKind::Public);
    }

    #[test]
    fn host_routes_match_the_canonical_name_only() {
        let r = router();
        assert_eq!(
            r.route("admin.shop.example", "/x").organization,
            Some("Operations")
        );
        assert_eq!(r.route("shop.example", "/x").kind, RouteKind::Public);
    }

    #[test]
    fn own_endpoints_come_first() {
        let r = router();
        assert_eq!(
            r.route("shop.example", "/oauth2/start").kind,
            RouteKind::Sidecar
        );
        assert_eq!(r.own_endpoint("/oauth2/callback"), Some("/callback"));
        assert_eq!(r.own_endpoint("/oauth2x"), None);
        assert_eq!(r.endpoint("/oauth2/jwks"), Some(Endpoint::Jwks));
        assert_eq!(r.endpoint("/oauth2/nope"), Some(Endpoint::Unknown));
        assert_eq!(r.route("shop.example", "/oauth2x").kind, RouteKind::Public);
    }

    #[test]
    fn unmatched_paths_require_login() {
        let r = Router::new(
            vec![route(None, "/static/", AuthMode::Public, None)],
            "/oauth2",
        );
        assert_eq!(r.route("a", "/checkout").kind, RouteKind::Required);
    }
}

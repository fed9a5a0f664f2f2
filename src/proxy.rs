//! The pingora `ProxyHttp` implementation. It stays thin: routing, header rules, pages and
//! metrics live in their own modules; this file wires them to pingora's request phases.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::header;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::auth::{self, Gate};
use crate::forwarding;
use crate::metrics::UpstreamFailure;
use crate::pages;
use crate::reply::Reply;
use crate::routing::canonical::{canonical_path, routing_path};
use crate::routing::RouteKind;
use crate::runtime::Runtime;
use crate::session::Session as UserSession;

pub struct SidecarProxy {
    /// Swapped whole on a config reload; each request keeps the one it started with.
    current: Arc<ArcSwap<Runtime>>,
}

impl SidecarProxy {
    pub fn new(current: Arc<ArcSwap<Runtime>>) -> Self {
        SidecarProxy { current }
    }
}

/// What one request carries from phase to phase.
pub struct RequestCtx {
    /// The configuration this request runs under, even if a reload happens meanwhile.
    rt: Arc<Runtime>,
    started: Instant,
    request_id: String,
    kind: RouteKind,
    /// The canonical path (with the query as sent) when it differs from the one received;
    /// the upstream gets it.
    canonical: Option<CanonicalTarget>,
    client_ip: Option<IpAddr>,
    upstream_sent: Option<Instant>,
    failure: Option<UpstreamFailure>,
    /// The signed-in user on protected routes.
    session: Option<Box<UserSession>>,
    /// Cookies to set on the upstream's response (a refreshed session).
    set_cookies: Vec<String>,
    /// The request's clock reading (Unix seconds), taken once for every decision on it.
    now: i64,
}

#[async_trait]
impl ProxyHttp for SidecarProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            rt: self.current.load_full(),
            started: Instant::now(),
            request_id: String::new(),
            kind: RouteKind::Required,
            canonical: None,
            client_ip: None,
            upstream_sent: None,
            failure: None,
            session: None,
            set_cookies: Vec::new(),
            now: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // Idle keep-alive connections close after `server.client_idle_timeout` (pingora's
        // HTTP/1.1 default keeps them open forever).
        session.set_keepalive(Some(ctx.rt.client_idle_secs));
        let req = session.req_header();
        ctx.request_id = forwarding::request_id(req.headers.get("x-request-id"));
        ctx.client_ip = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        let req = session.req_header();
        ctx.canonical = match canonical_path(req.uri.path()) {
            Ok(Cow::Borrowed(_)) => None,
            Ok(Cow::Owned(path)) => Some(CanonicalTarget::new(path, req.uri.query())),
            Err(problem) => {
                tracing::debug!(path = req.uri.path(), %problem, "path refused");
                let page = pages::message(
                    "Bad request",
                    "The address of this request is not valid.",
                    Some(("/", "Go to the shop")),
                    &ctx.request_id,
                );
                respond_reply(session, ctx, Reply::html(400, page)).await?;
                return Ok(true);
            }
        };
        let path = ctx
            .canonical
            .as_ref()
            .map_or(req.uri.path(), CanonicalTarget::path);
        let host = host_of(req);
        let rt = Arc::clone(&ctx.rt);
        let matched = rt.router.route(host, path);
        ctx.kind = matched.kind;
        if matched.kind == RouteKind::Public {
            return Ok(false);
        }
        if matched.kind != RouteKind::Sidecar && is_cors_preflight(req) {
            // Browsers send preflights without credentials: the backend answers them (no
            // identity is forwarded), or the route refuses them.
            if matched.preflight == crate::config::Preflight::Forward {
                return Ok(false);
            }
            let refused = serde_json::json!({"error": "cors_preflight_refused"});
            respond_reply(session, ctx, Reply::json(403, &refused)).await?;
            return Ok(true);
        }
        let now = chrono::Utc::now().timestamp();
        ctx.now = now;
        let is_post = req.method == http::Method::POST;
        let body = if matched.kind == RouteKind::Sidecar && is_post {
            match read_small_body(session).await? {
                Some(body) => body,
                None => {
                    respond_reply(
                        session,
                        ctx,
                        Reply::json(413, &serde_json::json!({"error": "request body too large"})),
                    )
                    .await?;
                    return Ok(true);
                }
            }
        } else {
            Vec::new()
        };
        let req = session.req_header();
        let (path, path_and_query) = match &ctx.canonical {
            Some(canonical) => (canonical.path(), canonical.target.as_str()),
            None => {
                let path = req.uri.path();
                (
                    path,
                    req.uri.path_and_query().map_or(path, |pq| pq.as_str()),
                )
            }
        };
        let request = auth::Request {
            method: &req.method,
            path_and_query,
            query: req.uri.query(),
            headers: &req.headers,
            request_id: &ctx.request_id,
            body: &body,
            // Only the sign-in endpoints use it (rate limits); not worth work on every request.
            client_ip: ctx
                .client_ip
                .filter(|_| matched.kind == RouteKind::Sidecar)
                .map(|peer| {
                    forwarding::client_ip(&req.headers, peer, &rt.config.server.trusted_proxies)
                }),
            peer_ip: ctx.client_ip,
        };
        let reply = if matched.kind == RouteKind::Sidecar {
            let routing = routing_path(path);
            let endpoint = rt.router.own_endpoint(&routing).unwrap_or_default();
            rt.auth.endpoint(endpoint, &request, now).await
        } else {
            match rt.auth.gate(&matched, &request, now).await {
                Gate::Forward {
                    session,
                    set_cookies,
                } => {
                    ctx.session = Some(session);
                    ctx.set_cookies = set_cookies;
                    return Ok(false);
                }
                Gate::Anonymous { set_cookies } => {
                    ctx.set_cookies = set_cookies;
                    return Ok(false);
                }
                Gate::KeepForm { login, posted_to } => match read_small_body(session).await? {
                    Some(body) => {
                        let headers = &session.req_header().headers;
                        let form = (posted_to, body);
                        rt.auth
                            .keep_form(headers, form, &login, &ctx.request_id, now)
                    }
                    None => {
                        Reply::json(413, &serde_json::json!({"error": "request body too large"}))
                    }
                },
                Gate::Deny(reply) => reply,
            }
        };
        respond_reply(session, ctx, reply).await?;
        Ok(true)
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let rt = Arc::clone(&ctx.rt);
        let target = &rt.upstream;
        let addr = target.address().await.map_err(|e| {
            ctx.failure = Some(UpstreamFailure::Other);
            Error::explain(
                ErrorType::ConnectNoRoute,
                format!("cannot resolve upstream: {e}"),
            )
        })?;
        let upstream = &target.upstream;
        let mut peer = HttpPeer::new(addr, upstream.tls, upstream.host.clone());
        let server = &rt.config.server;
        peer.options.connection_timeout = Some(server.connect_timeout);
        peer.options.read_timeout = Some(server.read_timeout);
        peer.options.write_timeout = Some(server.write_timeout);
        peer.options.idle_timeout = Some(server.idle_timeout);
        if let Some(ca) = &rt.upstream_ca {
            peer.options.ca = Some(ca.clone());
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let rt = Arc::clone(&ctx.rt);
        if let Some(canonical) = &ctx.canonical {
            let uri = canonical
                .target
                .parse()
                .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "canonical path", e))?;
            upstream_request.set_uri(uri);
        }
        for name in
            forwarding::identity_headers(&upstream_request.headers, &rt.identity_prefix_lower)
        {
            upstream_request.remove_header(&name);
        }
        match forwarding::cookies_without_sidecar(&upstream_request.headers, &rt.sidecar_cookies) {
            None => {}
            Some(kept) if kept.is_empty() => {
                upstream_request.remove_header(&header::COOKIE);
            }
            Some(kept) => upstream_request.insert_header(header::COOKIE, kept)?,
        }
        if let Some(peer) = ctx.client_ip {
            let fwd = forwarding::forwarded(
                &upstream_request.headers,
                peer,
                // What the client used to reach us: https when we terminate TLS.
                if rt.config.server.tls.is_some() {
                    "https"
                } else {
                    "http"
                },
                &rt.config.server.trusted_proxies,
            );
            upstream_request.insert_header("x-forwarded-for", fwd.for_chain)?;
            upstream_request.insert_header("x-forwarded-proto", fwd.proto)?;
            match fwd.host {
                Some(host) => upstream_request.insert_header("x-forwarded-host", host)?,
                None => {
                    upstream_request.remove_header("x-forwarded-host");
                }
            }
            if !forwarding::is_trusted(peer, &rt.config.server.trusted_proxies) {
                // RFC 7239 carries the same claims; only a trusted proxy may make them.
                upstream_request.remove_header("forwarded");
                for name in &rt.untrusted_headers {
                    upstream_request.remove_header(name);
                }
            }
            ctx.client_ip = Some(fwd.client_ip);
        }
        upstream_request.insert_header("x-request-id", ctx.request_id.as_str())?;
        if let Some(user) = &ctx.session {
            let policy = rt
                .self_administration
                .get(&user.organization)
                .copied()
                .unwrap_or("NONE");
            for (header, name) in &rt.identity_headers {
                if let Some(value) = forwarding::identity_value(*header, user, policy) {
                    upstream_request.insert_header(name.clone(), value)?;
                }
            }
            if let Some((name, signer)) = &rt.assertion {
                // The same reading the gate decided with.
                if let Some(assertion) = signer.assert(user, ctx.now) {
                    upstream_request.insert_header(name.clone(), assertion)?;
                }
            }
            if let Some(backend) = &user.backend {
                // The shop authenticates its own token (Spree's JWT), not the IdP's.
                upstream_request
                    .insert_header(header::AUTHORIZATION, format!("Bearer {}", backend.token))?;
            } else if rt.config.headers.forward_access_token {
                let bearer = format!("Bearer {}", user.tokens.access_token);
                upstream_request.insert_header(header::AUTHORIZATION, bearer)?;
            }
        }
        let _ = session;
        ctx.upstream_sent = Some(Instant::now());
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        _upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(sent) = ctx.upstream_sent.take() {
            ctx.rt
                .metrics
                .record_upstream_latency(ctx.kind, sent.elapsed());
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header("x-request-id", ctx.request_id.as_str())?;
        for cookie in ctx.set_cookies.drain(..) {
            upstream_response.append_header(header::SET_COOKIE, cookie)?;
        }
        Ok(())
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        e: Box<Error>,
    ) -> Box<Error> {
        ctx.failure.get_or_insert(match e.etype() {
            ErrorType::ConnectTimedout => UpstreamFailure::ConnectTimeout,
            ErrorType::ConnectRefused => UpstreamFailure::ConnectRefused,
            _ => UpstreamFailure::Other,
        });
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let timed_out = matches!(
            e.etype(),
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
        );
        let status = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ if e.esource() == &ErrorSource::Upstream || ctx.failure.is_some() => {
                if timed_out {
                    504
                } else {
                    502
                }
            }
            _ if e.esource() == &ErrorSource::Downstream => 0,
            _ => 500,
        };
        if status == 504 || status == 502 {
            let failure = ctx.failure.take().unwrap_or(if timed_out {
                UpstreamFailure::ReadTimeout
            } else {
                UpstreamFailure::Other
            });
            ctx.rt.metrics.record_upstream_failure(failure);
        }
        if status > 0 && session.response_written().is_none() {
            let (title, text) = match status {
                504 => (
                    "The shop is not answering",
                    "The shop did not answer in time. Please try again in a moment.",
                ),
                502 => (
                    "The shop is not reachable",
                    "The shop could not be reached. Please try again in a moment.",
                ),
                _ => (
                    "Something went wrong",
                    "The request could not be completed. Please try again.",
                ),
            };
            let page = pages::message(title, text, None, &ctx.request_id);
            if let Err(write_error) = respond_reply(session, ctx, Reply::html(status, page)).await {
                tracing::debug!(error = %write_error, "could not send the error page");
            }
        }
        FailToProxy {
            error_code: status,
            can_reuse_downstream: false,
        }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        ctx.rt.metrics.record_request(ctx.kind, status);
        let req = session.req_header();
        let elapsed_ms = ctx.started.elapsed().as_secs_f64() * 1000.0;
        // Formatted only when the line is written (access logs off cost nothing here).
        let client = tracing::field::display(OptionalIp(ctx.client_ip));
        // One line per request; failed ones at warn level with their cause.
        macro_rules! access_line {
            ($level:ident $(, $($extra:tt)+)?) => {
                tracing::$level!(
                    target: "access",
                    method = %req.method,
                    path = req.uri.path(),
                    status,
                    route = ctx.kind.as_str(),
                    duration_ms = elapsed_ms,
                    request_id = ctx.request_id.as_str(),
                    client = client
                    $(, $($extra)+)?
                )
            };
        }
        match e {
            None => access_line!(info),
            Some(error) => access_line!(warn, error = %error),
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, _error: &Error) -> bool {
        // Failures are already in the access line with their cause.
        true
    }
}

/// A request target whose path was canonicalised: the canonical path, then the query as
/// the client sent it. Built once; routing, the sign-in logic and the upstream share it.
struct CanonicalTarget {
    target: String,
    path_len: usize,
}

impl CanonicalTarget {
    fn new(mut path: String, query: Option<&str>) -> Self {
        let path_len = path.len();
        if let Some(query) = query {
            path.push('?');
            path.push_str(query);
        }
        CanonicalTarget {
            target: path,
            path_len,
        }
    }

    fn path(&self) -> &str {
        &self.target[..self.path_len]
    }
}

fn host_of(req: &RequestHeader) -> Option<&str> {
    req.headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| req.uri.host())
}

/// Form posts to our own endpoints are small; anything over this is refused.
const MAX_OWN_BODY: usize = 64 * 1024;

/// Reads the body of a `POST` to one of our endpoints; `None` when it is too large.
async fn read_small_body(session: &mut Session) -> Result<Option<Vec<u8>>> {
    let mut body = Vec::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_OWN_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// Sends a complete response of the sidecar's own.
async fn respond_reply(session: &mut Session, ctx: &RequestCtx, reply: Reply) -> Result<()> {
    let mut resp = ResponseHeader::build(reply.status, Some(reply.headers.len() + 2))?;
    for (name, value) in reply.headers {
        resp.append_header(name, value)?;
    }
    resp.insert_header(header::CONTENT_LENGTH, reply.body.len())?;
    resp.insert_header("x-request-id", ctx.request_id.as_str())?;
    let head_only = session.req_header().method == http::Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

/// A client address for the access line, empty when unknown.
struct OptionalIp(Option<std::net::IpAddr>);

impl std::fmt::Display for OptionalIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(ip) => ip.fmt(f),
            None => Ok(()),
        }
    }
}

/// RFC 9110 `OPTIONS` with the two headers that make it a CORS preflight (Fetch standard).
fn is_cors_preflight(req: &RequestHeader) -> bool {
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(header::ORIGIN)
        && req
            .headers
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD)
}

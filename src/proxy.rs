//! The pingora `ProxyHttp` implementation. It stays thin: routing, header rules, pages and
//! metrics live in their own modules; this file wires them to pingora's request phases.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::header;
use pingora::http::authority::{raw_target_authority, RawTargetAuthority};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::{HttpPeer, ProxyHttp, Session};
use pingora::proxy::FailToProxy;
use pingora::{Error, ErrorSource, ErrorType, Result};

use crate::auth::gate::BackendAsk;
use crate::auth::step_up::Challenge;
use crate::auth::{self, Gate};
use crate::config::Preflight;
use crate::forward_auth::{self, NotDecided};
use crate::forwarding::{self, Forwarded};
use crate::host::{request_host, CanonicalHost, HostSources};
use crate::metrics::UpstreamFailure;
use crate::pages;
use crate::preflight;
use crate::principal::Principal;
use crate::reply::Reply;
use crate::routing::canonical::{canonical_path, routing_path};
use crate::routing::{Endpoint, Matched, RouteKind};
use crate::runtime::Runtime;
use crate::upstream_headers::{self, HeaderEdits, IdentityLines, Outgoing, UpstreamName};

pub struct SidecarProxy {
    /// Swapped whole on a config reload; each request keeps the one it started with.
    current: Arc<ArcSwap<Served>>,
}

impl SidecarProxy {
    pub fn new(current: Arc<ArcSwap<Served>>) -> Self {
        SidecarProxy { current }
    }
}

/// A runtime as the proxy serves it, with the parts only pingora's types can hold built
/// beside it once per config.
pub struct Served {
    runtime: Runtime,
    /// `server.upstream_ca` as pingora's upstream TLS wants it.
    upstream_ca: Option<Arc<pingora::protocols::tls::CaType>>,
}

impl Served {
    pub fn new(runtime: Runtime) -> Self {
        let upstream_ca = runtime.config.server.upstream_ca.as_ref().map(|certs| {
            let wrapped: Vec<_> = certs
                .iter()
                .map(|der| {
                    // Validation parsed each one, so this parse (which panics) succeeds.
                    pingora::utils::tls::WrappedX509::new(
                        der.clone(),
                        pingora::utils::tls::parse_x509,
                    )
                })
                .collect();
            Arc::<pingora::protocols::tls::CaType>::from(wrapped)
        });
        Served {
            runtime,
            upstream_ca,
        }
    }
}

impl std::ops::Deref for Served {
    type Target = Runtime;

    fn deref(&self) -> &Runtime {
        &self.runtime
    }
}

/// What one request carries from phase to phase.
pub struct RequestCtx {
    /// The configuration this request runs under, even if a reload happens meanwhile.
    rt: Arc<Served>,
    started: Instant,
    /// Visible ASCII (see [`forwarding::request_id`]).
    request_id: http::HeaderValue,
    kind: RouteKind,
    /// The canonical host ([`crate::host`]); `None` only before it is decided or
    /// when the request was refused for it.
    host: Option<CanonicalHost>,
    /// The upstream's `Host` when it differs from the client's field (another spelling, or
    /// taken from an absolute-form target).
    host_header: Option<http::HeaderValue>,
    /// The canonical path (with the query as sent) when it differs from the one received,
    /// or when the target came in absolute-form; the upstream gets it in origin-form.
    canonical: Option<CanonicalTarget>,
    /// Worked out once from the peer and the trusted proxies: the client's address and the
    /// `X-Forwarded-*` values. `None` when the peer has no IP address.
    forwarded: Option<Forwarded>,
    upstream_sent: Option<Instant>,
    failure: Option<UpstreamFailure>,
    /// Who the upstream is told is asking, on protected routes.
    principal: Option<Box<Principal>>,
    /// Replaces the client's `Authorization` upstream (the shop's own token).
    authorization: Option<String>,
    /// Cookies to set on the upstream's response (a refreshed session).
    set_cookies: Vec<String>,
    /// The request's clock reading (Unix seconds), taken once for every decision on it.
    now: i64,
    /// A CORS preflight let through unauthenticated: only the answer's CORS headers and
    /// status go back ([`crate::preflight`]).
    preflight: bool,
    /// A signed-in browser's page or form whose backend may ask for a step-up (RFC 9470).
    backend_ask: Option<BackendAsk>,
    /// The upstream's answer was replaced by one of ours (a step-up): its body goes.
    answer_replaced: bool,
}

impl RequestCtx {
    /// The path routing and the sign-in logic go by: the canonical one where it differs.
    fn path<'a>(&'a self, req: &'a RequestHeader) -> &'a str {
        self.canonical
            .as_ref()
            .map_or(req.uri.path(), CanonicalTarget::path)
    }

    fn request_id(&self) -> &str {
        self.request_id.to_str().unwrap_or_default()
    }

    fn client_ip(&self) -> Option<IpAddr> {
        self.forwarded.as_ref().map(|f| f.client_ip)
    }

    /// The canonical host's name, which routes match on.
    fn host_name(&self) -> &str {
        self.host.as_ref().map_or("", CanonicalHost::name)
    }
}

/// What becomes of a request.
enum Admission {
    /// On to the upstream.
    Forward,
    /// Answered by the sidecar.
    Answer(Reply),
    /// A forward-auth answer: the reply and the headers it hands the ingress.
    ForwardAuth(Reply, http::HeaderMap),
}

#[async_trait]
impl ProxyHttp for SidecarProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            rt: self.current.load_full(),
            started: Instant::now(),
            request_id: http::HeaderValue::from_static(""),
            kind: RouteKind::Required,
            host: None,
            host_header: None,
            canonical: None,
            forwarded: None,
            upstream_sent: None,
            failure: None,
            principal: None,
            authorization: None,
            set_cookies: Vec::new(),
            now: 0,
            preflight: false,
            backend_ask: None,
            answer_replaced: false,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        // Idle keep-alive connections close after `server.client_idle_timeout` (pingora's
        // HTTP/1.1 default keeps them open forever).
        session.set_keepalive(Some(ctx.rt.client_idle_secs));
        let req = session.req_header();
        ctx.request_id = forwarding::request_id(req.headers.get("x-request-id"));
        let host = decide_host(req, ctx);
        note_request(session, ctx);
        let rt = Arc::clone(&ctx.rt);
        let admission = match host {
            Ok(()) => admit(session, ctx, &rt).await?,
            Err(reply) => Admission::Answer(reply),
        };
        match admission {
            Admission::Forward => Ok(false),
            Admission::Answer(reply) => {
                respond_reply(session, ctx, reply).await?;
                Ok(true)
            }
            Admission::ForwardAuth(reply, extra) => {
                respond_with(session, ctx, reply, extra).await?;
                Ok(true)
            }
        }
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
        _session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(canonical) = &ctx.canonical {
            let uri = canonical
                .target
                .parse()
                .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "canonical path", e))?;
            upstream_request.set_uri(uri);
        }
        if let Some(host) = &ctx.host_header {
            upstream_request.insert_header(header::HOST, host.clone())?;
        }
        let outgoing = Outgoing {
            forwarded: ctx.forwarded.as_ref(),
            request_id: &ctx.request_id,
            principal: ctx.principal.as_deref(),
            authorization: ctx.authorization.as_deref(),
            now: ctx.now,
        };
        (ctx.rt.upstream_headers)
            .apply(upstream_request, &outgoing)
            .map_err(|e| Error::because(ErrorType::InvalidHTTPHeader, "upstream header", e))?;
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
                .traffic
                .record_upstream_latency(ctx.kind, sent.elapsed());
        }
        Ok(())
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(ask), Some(chunk)) = (&mut ctx.backend_ask, body) {
            ask.copy(chunk);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if upstream_response.status == http::StatusCode::UNAUTHORIZED && ctx.backend_ask.is_some() {
            step_up_for_backend(session, upstream_response, ctx)?;
        }
        if ctx.preflight {
            for name in preflight::headers_to_drop(&upstream_response.headers) {
                upstream_response.remove_header(&name);
            }
            upstream_response.insert_header(header::CONTENT_LENGTH, 0)?;
        }
        // Under a ready name (vendor/README.md, change 7): not parsed on every response.
        const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
        let spelled = bytes::Bytes::from_static(b"x-request-id");
        upstream_response.insert_header_named(&REQUEST_ID, &spelled, ctx.request_id.clone())?;
        for cookie in ctx.set_cookies.drain(..) {
            upstream_response.append_header(header::SET_COOKIE, cookie)?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        if ctx.preflight || ctx.answer_replaced {
            *body = None;
        }
        Ok(None)
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
        let status = failure_status(e, ctx);
        if status > 0 && session.response_written().is_none() {
            let page = pages::upstream_failure(status, ctx.request_id());
            if let Err(write_error) = respond_reply(session, ctx, Reply::page(status, page)).await {
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
        ctx.rt.metrics.traffic.record_request(ctx.kind, status);
        let req = session.req_header();
        let elapsed_ms = ctx.started.elapsed().as_secs_f64() * 1000.0;
        // Formatted only when the line is written (access logs off cost nothing here).
        let client = tracing::field::display(OptionalIp(ctx.client_ip()));
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
                    request_id = ctx.request_id(),
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

/// Where the request comes from, worked out once for everything after.
fn note_request(session: &Session, ctx: &mut RequestCtx) {
    let req = session.req_header();
    let peer = session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| a.ip());
    let (scheme, trusted) = (ctx.rt.own_scheme, &ctx.rt.config.server.trusted_proxies);
    let host = ctx
        .host_header
        .clone()
        .or_else(|| req.headers.get(header::HOST).cloned());
    ctx.forwarded =
        peer.map(|peer| forwarding::forwarded(&req.headers, peer, scheme, trusted, host));
}

/// Decides whether a request goes upstream or is answered here: its path made canonical,
/// routed, CORS preflights settled, then the sidecar's own endpoints or the gate.
async fn admit(session: &mut Session, ctx: &mut RequestCtx, rt: &Runtime) -> Result<Admission> {
    let req = session.req_header();
    if let Err(reply) = canonicalise(req, ctx) {
        return Ok(Admission::Answer(reply));
    }
    let path = ctx.path(req);
    let matched = rt.router.route(ctx.host_name(), path);
    let asks_forward_auth = matched.kind == RouteKind::Sidecar
        && rt.router.endpoint(&routing_path(path)) == Some(Endpoint::Auth);
    ctx.kind = matched.kind;
    if matched.kind == RouteKind::Public {
        return Ok(Admission::Forward);
    }
    if matched.kind != RouteKind::Sidecar && preflight::is_cors_preflight(&req.method, &req.headers)
    {
        ctx.preflight = true;
        return Ok(pass_preflight(matched.preflight));
    }
    ctx.now = chrono::Utc::now().timestamp();
    if asks_forward_auth {
        return Box::pin(forward_auth(session, ctx, rt)).await;
    }
    if matched.kind == RouteKind::Sidecar {
        // Boxed: the sign-in endpoints' state is large and proxied requests never need it.
        return Box::pin(own_endpoint(session, ctx, rt))
            .await
            .map(Admission::Answer);
    }
    gate(session, ctx, rt, &matched).await
}

/// Decides the canonical host, and the upstream's `Host` where it differs from the
/// client's; a request without one clear host is refused.
fn decide_host(req: &RequestHeader, ctx: &mut RequestCtx) -> std::result::Result<(), Reply> {
    let mut fields = req.headers.get_all(header::HOST).iter();
    let (first, second) = (fields.next(), fields.next());
    let both: [&[u8]; 2] = [
        first.map_or(&[][..], |v| v.as_bytes()),
        second.map_or(&[][..], |v| v.as_bytes()),
    ];
    let count = usize::from(first.is_some()) + usize::from(second.is_some());
    let authority = match raw_target_authority(req.raw_path()) {
        RawTargetAuthority::Absolute { authority, .. } => Some(authority),
        _ => req.uri.authority().map(|a| a.as_str().as_bytes()),
    };
    let sources = HostSources {
        host_fields: &both[..count],
        authority,
        scheme: ctx.rt.own_scheme,
    };
    match request_host(sources) {
        Ok(host) => {
            if !first.is_some_and(|field| host.is_spelled(field.as_bytes())) {
                ctx.host_header = http::HeaderValue::try_from(host.to_string()).ok();
            }
            ctx.host = Some(host);
            Ok(())
        }
        Err(problem) => {
            ctx.rt.metrics.traffic.request_refused(problem.reason());
            tracing::debug!(%problem, "host refused");
            Err(Reply::page(400, pages::bad_address(ctx.request_id())))
        }
    }
}

/// Notes the canonical path when it differs from the one received (or the target came in
/// absolute-form, which the upstream gets in origin-form); a path that cannot be made
/// canonical is refused.
fn canonicalise(req: &RequestHeader, ctx: &mut RequestCtx) -> std::result::Result<(), Reply> {
    let absolute_form = req.raw_path().first() != Some(&b'/');
    match canonical_path(req.uri.path()) {
        Ok(Cow::Borrowed(path)) if absolute_form => {
            ctx.canonical = Some(CanonicalTarget::new(path.to_owned(), req.uri.query()));
            Ok(())
        }
        Ok(Cow::Borrowed(_)) => Ok(()),
        Ok(Cow::Owned(path)) => {
            ctx.canonical = Some(CanonicalTarget::new(path, req.uri.query()));
            Ok(())
        }
        Err(problem) => {
            tracing::debug!(path = req.uri.path(), %problem, "path refused");
            Err(Reply::page(400, pages::bad_address(ctx.request_id())))
        }
    }
}

/// Browsers send preflights without credentials: the backend answers them (no identity is
/// forwarded), or the route refuses them.
fn pass_preflight(policy: Preflight) -> Admission {
    match policy {
        Preflight::Forward => Admission::Forward,
        Preflight::Deny => {
            let refused = serde_json::json!({"error": "cors_preflight_refused"});
            Admission::Answer(Reply::json(403, &refused))
        }
    }
}

/// One of the sidecar's own endpoints (`/oauth2/...`).
async fn own_endpoint(session: &mut Session, ctx: &RequestCtx, rt: &Runtime) -> Result<Reply> {
    let body = if session.req_header().method == http::Method::POST {
        match read_small_body(session).await? {
            Some(body) => body,
            None => return Ok(body_too_large()),
        }
    } else {
        Vec::new()
    };
    let req = session.req_header();
    let path = ctx.path(req);
    let endpoint = rt
        .router
        .endpoint(&routing_path(path))
        .unwrap_or(Endpoint::Unknown);
    if endpoint == Endpoint::Stylesheet {
        let css = rt.pages.stylesheet(ctx.host.as_ref().map(|h| h.name()));
        return Ok(match css {
            Some(css) => Reply::stylesheet(css),
            None => Reply::page(404, pages::not_ours(ctx.request_id())),
        });
    }
    Ok(rt
        .auth
        .endpoint(endpoint, &auth_request(req, ctx, &body), ctx.now)
        .await)
}

/// `/oauth2/auth`: an ingress asks whether a request may go to the backend, and with which
/// identity ([`crate::forward_auth`]). The request it asks about goes through the same
/// canonical host and path, routes and gate as a proxied one.
async fn forward_auth(
    session: &mut Session,
    ctx: &mut RequestCtx,
    rt: &Runtime,
) -> Result<Admission> {
    let req = session.req_header();
    let trusted = ctx.forwarded.as_ref().is_some_and(|f| f.peer_trusted);
    let Some(own_host) = ctx.host.clone() else {
        return Ok(Admission::Answer(Reply::page(
            400,
            pages::bad_address(ctx.request_id()),
        )));
    };
    let original =
        match forward_auth::original_request(&req.headers, trusted, &own_host, rt.own_scheme) {
            Ok(original) => original,
            Err(problem) => {
                let (status, reason) = match problem {
                    NotDecided::Disagree => (403, "forward_auth_disagree"),
                    NotDecided::Malformed => (400, "forward_auth_malformed"),
                };
                rt.metrics.traffic.request_refused(reason);
                return Ok(Admission::Answer(Reply::json(
                    status,
                    &serde_json::json!({"error": reason}),
                )));
            }
        };
    let (path, query) = match original.target.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (original.target.as_str(), None),
    };
    let Ok(canonical) = canonical_path(path) else {
        return Ok(Admission::Answer(Reply::page(
            400,
            pages::bad_address(ctx.request_id()),
        )));
    };
    let target = match query {
        Some(query) => format!("{canonical}?{query}"),
        None => canonical.clone().into_owned(),
    };
    let matched = rt.router.route(original.host.name(), &canonical);
    ctx.kind = matched.kind;
    let allowed = || Reply::json(200, &serde_json::json!({}));
    match matched.kind {
        // The sidecar's own endpoints answer for themselves, and public pages for anyone.
        RouteKind::Public | RouteKind::Sidecar => return Ok(Admission::Answer(allowed())),
        _ if preflight::is_cors_preflight(&original.method, &req.headers) => {
            return Ok(match pass_preflight(matched.preflight) {
                Admission::Forward => Admission::Answer(allowed()),
                refused => refused,
            });
        }
        _ => {}
    }
    let url = original.url();
    let mode = forward_auth::Mode::from_query(req.uri.query());
    let request = auth::Request {
        method: &original.method,
        path_and_query: &target,
        query,
        headers: &req.headers,
        request_id: ctx.request_id(),
        body: &[],
        client_ip: ctx.client_ip(),
        host: Some(&original.host),
        forward_auth: Some(auth::ForwardAuth {
            redirect: mode.redirect,
            url: &url,
        }),
    };
    let decided = rt.auth.gatekeeper().gate(&matched, &request, ctx.now).await;
    let prefix = &rt.config.headers.prefix;
    let (reply, extra) = forward_auth::answer(decided, &rt.upstream_headers, prefix, ctx.now);
    Ok(Admission::ForwardAuth(reply, extra))
}

/// A protected route: the gate decides who is asking, or answers instead.
async fn gate(
    session: &mut Session,
    ctx: &mut RequestCtx,
    rt: &Runtime,
    matched: &Matched<'_>,
) -> Result<Admission> {
    let request = auth_request(session.req_header(), ctx, &[]);
    let gatekeeper = rt.auth.gatekeeper();
    let reply = match gatekeeper.gate(matched, &request, ctx.now).await {
        Gate::Forward {
            principal,
            authorization,
            set_cookies,
        } => {
            ctx.backend_ask = gatekeeper.backend_may_ask(matched, &principal, &request);
            (ctx.principal, ctx.authorization) = (Some(principal), authorization);
            ctx.set_cookies = set_cookies;
            return Ok(Admission::Forward);
        }
        Gate::Anonymous { set_cookies } => {
            ctx.set_cookies = set_cookies;
            return Ok(Admission::Forward);
        }
        Gate::KeepForm { login, posted_to } => match read_small_body(session).await? {
            Some(body) => {
                let headers = &session.req_header().headers;
                gatekeeper.keep_form(
                    headers,
                    (posted_to, body),
                    &login,
                    ctx.request_id(),
                    ctx.now,
                )
            }
            None => body_too_large(),
        },
        Gate::Deny(reply) => reply,
    };
    Ok(Admission::Answer(reply))
}

/// The status for a request that could not be proxied (`0`: the client went away), with
/// an upstream failure counted by its cause.
fn failure_status(e: &Error, ctx: &mut RequestCtx) -> u16 {
    let timed_out = matches!(
        e.etype(),
        ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout
    );
    let upstream_failed = e.esource() == &ErrorSource::Upstream || ctx.failure.is_some();
    let status = match e.etype() {
        ErrorType::HTTPStatus(code) => *code,
        _ if upstream_failed && timed_out => 504,
        _ if upstream_failed => 502,
        _ if e.esource() == &ErrorSource::Downstream => 0,
        _ => 500,
    };
    if status == 504 || status == 502 {
        let cause = match timed_out {
            true => UpstreamFailure::ReadTimeout,
            false => UpstreamFailure::Other,
        };
        let failure = ctx.failure.take().unwrap_or(cause);
        ctx.rt.metrics.traffic.record_upstream_failure(failure);
    }
    status
}

/// The backend answered a signed-in browser's page or form with RFC 9470's challenge:
/// its answer is replaced by the way to a stronger sign-in, which comes back to the page
/// (the form posted again). The backend's own cookies stay on the answer.
fn step_up_for_backend(
    session: &Session,
    upstream_response: &mut ResponseHeader,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let challenges = upstream_response.headers.get_all(header::WWW_AUTHENTICATE);
    let challenge =
        Challenge::from_www_authenticate(challenges.iter().filter_map(|v| v.to_str().ok()));
    let (Some(challenge), Some(principal), Some(ask)) =
        (challenge, ctx.principal.as_deref(), ctx.backend_ask.take())
    else {
        return Ok(());
    };
    let rt = Arc::clone(&ctx.rt);
    let request = auth_request(session.req_header(), ctx, &[]);
    let gatekeeper = rt.auth.gatekeeper();
    let reply = gatekeeper.backend_step_up(principal, challenge, ask, &request, ctx.now);
    let kept_cookies: Vec<http::HeaderValue> = (upstream_response.headers)
        .get_all(header::SET_COOKIE)
        .iter()
        .cloned()
        .collect();
    let mut answer = ResponseHeader::build(reply.status, Some(reply.headers.len() + 4))?;
    for (name, value) in reply.headers {
        answer.append_header(name, value)?;
    }
    for cookie in kept_cookies {
        answer.append_header(header::SET_COOKIE, cookie)?;
    }
    answer.insert_header(header::CONTENT_LENGTH, 0)?;
    *upstream_response = answer;
    ctx.answer_replaced = true;
    Ok(())
}

/// The parts of the request the sign-in logic looks at.
fn auth_request<'a>(
    req: &'a RequestHeader,
    ctx: &'a RequestCtx,
    body: &'a [u8],
) -> auth::Request<'a> {
    let path_and_query = match &ctx.canonical {
        Some(canonical) => canonical.target.as_str(),
        None => req
            .uri
            .path_and_query()
            .map_or(req.uri.path(), |pq| pq.as_str()),
    };
    auth::Request {
        method: &req.method,
        path_and_query,
        query: req.uri.query(),
        headers: &req.headers,
        request_id: ctx.request_id(),
        body,
        client_ip: ctx.client_ip(),
        host: ctx.host.as_ref(),
        forward_auth: None,
    }
}

fn body_too_large() -> Reply {
    Reply::json(413, &serde_json::json!({"error": "request body too large"}))
}

impl HeaderEdits for RequestHeader {
    fn headers(&self) -> &http::HeaderMap {
        &self.headers
    }

    fn set(&mut self, name: &UpstreamName, value: http::HeaderValue) {
        // The name as it is, never parsed again (vendor/README.md, change 7); spelled as
        // given where the head keeps header case. Cannot fail: name and value are valid.
        let _ = self.insert_header_named(&name.name, &name.wire, value);
    }

    fn remove(&mut self, name: &http::HeaderName) {
        self.remove_header(name);
    }

    fn set_new(&mut self, headers: &[(&UpstreamName, &http::HeaderValue)]) {
        // One block of lines (vendor/README.md, change 9) instead of a map insert each.
        self.append_wire_headers(upstream_headers::wire_lines(headers.iter().copied()));
    }

    fn set_identity(&mut self, identity: &IdentityLines<'_>) {
        // The session's lines as they were built (vendor/README.md, change 9): one
        // reference-counted copy instead of a map insert per header.
        self.append_wire_headers(identity.wire.clone());
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
    respond_with(session, ctx, reply, http::HeaderMap::new()).await
}

/// [`respond_reply`] with headers beyond the reply's own (a forward-auth answer's).
async fn respond_with(
    session: &mut Session,
    ctx: &RequestCtx,
    reply: Reply,
    extra: http::HeaderMap,
) -> Result<()> {
    let accept_language =
        (session.req_header().headers.get(header::ACCEPT_LANGUAGE)).and_then(|v| v.to_str().ok());
    let host = ctx.host.as_ref().map(|h| h.name());
    let reply = reply.render(&ctx.rt.pages, host, accept_language);
    let mut resp =
        ResponseHeader::build(reply.status, Some(reply.headers.len() + extra.len() + 2))?;
    for (name, value) in reply.headers {
        resp.append_header(name, value)?;
    }
    for (name, value) in &extra {
        resp.append_header(name.clone(), value.clone())?;
    }
    resp.insert_header(header::CONTENT_LENGTH, reply.body.len())?;
    resp.insert_header("x-request-id", ctx.request_id.clone())?;
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

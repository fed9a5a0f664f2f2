//! The audit log (`log.audit`): one JSON line per sign-in, failed sign-in, sign-out,
//! refresh failure, revocation and denial, for the people who must answer "who was let
//! in, who was shut out, and who ended whose session". Apart from the operational log,
//! whose lines and levels may change from release to release, these lines keep one
//! documented schema (`docs/src/reference/audit.md`, `"v": 1`): fields are only ever
//! added.
//!
//! Written through the log's batching writer ([`crate::log_batch`]), which never drops a
//! line (a full buffer makes the request wait), to stdout beside the log or appended to a
//! file.

use std::io::Write;
use std::net::IpAddr;
use std::sync::OnceLock;

use crate::log_batch::BatchWriter;
use serde::Serialize;

use crate::config::AuditLog;
use crate::session::Session;

/// The schema's version: a line of another shape gets another number.
const SCHEMA: u32 = 1;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    SignIn,
    SignInFailed,
    SignOut,
    RefreshFailed,
    Revocation,
    Denied,
}

/// Who ended a session or revoked something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The person, by signing out.
    User,
    /// The person, on `/oauth2/sessions`.
    SessionsPage,
    /// Support, through the admin API.
    Admin,
    /// The IdP's back-channel logout.
    IdpBackChannel,
    /// The IdP's front-channel logout.
    IdpFrontChannel,
    /// A Shared Signals transmitter.
    SecurityEvent,
    /// The sidecar itself: a revoked session seen, a refresh refused, membership lost.
    Sidecar,
}

/// One line. Fields that do not apply are left out.
#[derive(Debug, Clone, Serialize)]
pub struct Event<'a> {
    pub v: u32,
    pub time: String,
    pub event: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<By>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity_provider: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<&'a str>,
    /// The email or login name where the event knows it (denials).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<&'a str>,
    /// The session's id, as `/oauth2/sessions` and the admin API show it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<&'a str>,
    /// The IdP's session (`sid`) a logout named.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idp_session: Option<&'a str>,
    /// A security event's transmitter.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub issuer: Option<&'a str>,
    /// How many sessions an order from elsewhere ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended: Option<usize>,
    /// The logout policy of a sign-out (`LOCAL`, `EXTERNAL`, `FEDERATED`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub method: Option<&'a str>,
    /// The path without its query (which may carry codes and tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
}

impl<'a> Event<'a> {
    pub fn new(event: Kind) -> Self {
        Event {
            v: SCHEMA,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            event,
            reason: None,
            by: None,
            organization: None,
            identity_provider: None,
            subject: None,
            user: None,
            session: None,
            idp_session: None,
            issuer: None,
            ended: None,
            policy: None,
            request_id: None,
            client: None,
            method: None,
            path: None,
        }
    }

    /// Whose session: organization, IdP, subject and the session's id.
    pub fn session(mut self, session: &'a Session) -> Self {
        self.organization = Some(&session.organization);
        self.identity_provider = Some(&session.identity_provider);
        self.subject = Some(&session.identity.subject);
        self.session = Some(&session.id);
        self
    }

    /// The request it happened on.
    pub fn request(
        mut self,
        request_id: &'a str,
        client: Option<IpAddr>,
        method: &'a str,
        path_and_query: &'a str,
    ) -> Self {
        self.request_id = Some(request_id);
        self.client = client;
        self.method = Some(method);
        self.path = path_and_query.split('?').next();
        self
    }

    pub fn reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn by(mut self, by: By) -> Self {
        self.by = Some(by);
        self
    }

    /// Writes the line, when there is an audit log.
    pub fn record(self) {
        let Some(sink) = SINK.get() else { return };
        let Ok(mut line) = serde_json::to_vec(&self) else {
            return;
        };
        line.push(b'\n');
        // One write per line: lines never interleave with the log's on stdout.
        let _ = sink.writer.clone().write_all(&line);
    }
}

struct Sink {
    writer: BatchWriter,
}

static SINK: OnceLock<Sink> = OnceLock::new();

/// Opens the audit log. A file is opened (made) for appending now, so a path that cannot
/// be written stops the start instead of losing the lines.
pub fn init(destination: &AuditLog) -> std::io::Result<()> {
    let writer = match destination {
        AuditLog::Off => return Ok(()),
        AuditLog::Stdout => match crate::logging::stdout_writer() {
            Some(writer) => writer,
            None => BatchWriter::spawn(Box::new(std::io::stdout()), "sso-sidecar-audit")?,
        },
        AuditLog::File(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            BatchWriter::spawn(Box::new(file), "sso-sidecar-audit")?
        }
    };
    let sink = Sink { writer };
    // Set once per process; a reload keeps the first.
    let _ = SINK.set(sink);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_the_documented_fields_and_nothing_that_does_not_apply() {
        let event = Event::new(Kind::Denied).reason("forbidden").request(
            "r-1",
            Some("203.0.113.7".parse().unwrap()),
            "GET",
            "/backoffice/orders?code=secret",
        );
        let line: serde_json::Value = serde_json::to_value(&event).unwrap();
        assert_eq!(line["v"], 1);
        assert_eq!(line["event"], "denied");
        assert_eq!(line["reason"], "forbidden");
        assert_eq!(line["client"], "203.0.113.7");
        // The query, which may carry codes or tokens, is never written.
        assert_eq!(line["path"], "/backoffice/orders");
        assert!(line.get("subject").is_none() && line.get("by").is_none());
        assert!(chrono::DateTime::parse_from_rfc3339(line["time"].as_str().unwrap()).is_ok());
    }

    #[test]
    fn who_ended_it_is_written_in_snake_case() {
        let event = Event::new(Kind::Revocation).by(By::IdpBackChannel);
        let line = serde_json::to_value(&event).unwrap();
        assert_eq!(line["by"], "idp_back_channel");
        assert_eq!(line["event"], "revocation");
    }
}

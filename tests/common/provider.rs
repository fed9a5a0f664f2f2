//! The real OpenID provider (`idp/provider.mjs`, npm `oidc-provider`).

use super::*;

/// A real OpenID provider (`idp/provider.mjs`, npm `oidc-provider`), killed when dropped.
pub struct Idp {
    pub issuer: String,
    pub port: u16,
    settings: serde_json::Value,
    child: Child,
}

impl Idp {
    /// Starts the provider with `settings` (see the header of `idp/provider.mjs`).
    pub fn start(settings: serde_json::Value) -> Self {
        use std::io::BufRead;
        let script = repo_root().join("idp/provider.mjs");
        assert!(
            repo_root().join("idp/node_modules/oidc-provider").exists(),
            "idp/node_modules is missing: run `make test` (it runs npm ci)"
        );
        // The provider's own log, kept for looking into a failed test.
        let logs = repo_root().join("target/test-artifacts/idp-logs");
        std::fs::create_dir_all(&logs).unwrap();
        let log =
            std::fs::File::create(logs.join(format!("{}-{}.log", std::process::id(), free_port())))
                .unwrap();
        let mut child = Command::new("node")
            .arg(script)
            .env("IDP_CONFIG", settings.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("node is installed");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("IdP did not start ({e}): {line:?}"));
        Idp {
            issuer: ready["issuer"].as_str().unwrap().to_owned(),
            port: ready["port"].as_u64().unwrap() as u16,
            settings,
            child,
        }
    }

    /// Starts the provider again on the same port after [`Idp::stop`]. Its memory (sessions,
    /// grants, refresh tokens, keys) is gone, as after a real outage with an in-memory store.
    pub fn restart(&mut self) {
        self.stop();
        let mut settings = self.settings.clone();
        settings["port"] = serde_json::json!(self.port);
        let fresh = Self::start(settings);
        assert_eq!(fresh.issuer, self.issuer);
        *self = fresh;
    }

    /// A provider with one confidential client `shop` / `shop-secret` for `ports`.
    pub fn for_sidecar(ports: Ports, extra: serde_json::Value) -> Self {
        let mut settings = serde_json::json!({
            "clients": [{
                "client_id": "shop",
                "client_secret": "shop-secret",
                "redirect_uris": [ports.callback()],
                "post_logout_redirect_uris": [format!("{}/", ports.origin())],
                "backchannel_logout_uri": format!("{}/oauth2/backchannel-logout", ports.origin()),
                "backchannel_logout_session_required": true,
            }],
        });
        if let (Some(base), Some(extra)) = (settings.as_object_mut(), extra.as_object()) {
            base.extend(extra.clone());
        }
        Self::start(settings)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn stats(&self) -> serde_json::Value {
        reqwest::blocking::get(self.url("/_test/stats"))
            .unwrap()
            .json()
            .unwrap()
    }

    /// The `sid` this provider gave client `shop` in `browser`'s session with it.
    pub fn sid_of(&self, browser: &Browser) -> String {
        let session = browser
            .cookie(&self.url("/"), "_session")
            .expect("signed in at the IdP");
        let answer: serde_json::Value =
            reqwest::blocking::get(self.url(&format!("/_test/sid?session={session}")))
                .unwrap()
                .json()
                .unwrap();
        answer["sid"].as_str().expect("a sid for shop").to_owned()
    }

    /// Replaces the claims the provider gives `login` from now on (tokens and refreshes).
    pub fn set_user(&self, login: &str, claims: serde_json::Value) {
        let status = reqwest::blocking::Client::new()
            .post(self.url("/_test/user"))
            .body(serde_json::json!({"login": login, "claims": claims}).to_string())
            .send()
            .unwrap()
            .status();
        assert!(status.is_success());
    }

    /// A back-channel logout token signed by this provider, shaped by `spec`.
    pub fn logout_token(&self, spec: serde_json::Value) -> String {
        let answer: serde_json::Value = reqwest::blocking::Client::new()
            .post(self.url("/_test/logout-token"))
            .body(spec.to_string())
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["logout_token"].as_str().unwrap().to_owned()
    }

    /// `claims` signed as `mode` says (see `/_test/sign` in `idp/provider.mjs`).
    pub fn sign(&self, claims: serde_json::Value, mode: &str) -> String {
        self.sign_typed(claims, mode, None)
    }

    /// Like [`Idp::sign`], with a `typ` in the JWT header (`at+jwt`, `logout+jwt`).
    pub fn sign_typed(&self, claims: serde_json::Value, mode: &str, typ: Option<&str>) -> String {
        let answer: serde_json::Value = reqwest::blocking::Client::new()
            .post(self.url("/_test/sign"))
            .body(serde_json::json!({"claims": claims, "mode": mode, "typ": typ}).to_string())
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["token"].as_str().unwrap().to_owned()
    }

    /// Makes an endpoint misbehave: `target` discovery|token|jwks|userinfo, `mode`
    /// html|json|slow|off.
    pub fn garble(&self, target: &str, mode: &str) {
        reqwest::blocking::Client::new()
            .post(self.url(&format!("/_test/garble?target={target}&mode={mode}")))
            .send()
            .unwrap();
    }

    pub fn rotate_keys(&self) {
        reqwest::blocking::Client::new()
            .post(self.url("/_test/rotate-keys"))
            .send()
            .unwrap();
    }

    pub fn forge(&self, mode: &str) {
        reqwest::blocking::Client::new()
            .post(self.url(&format!("/_test/forge?mode={mode}")))
            .send()
            .unwrap();
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.stop();
    }
}

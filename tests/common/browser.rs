//! Browsers: a cookie-keeping HTTP client that follows sign-ins like a browser, and
//! headless Chromium for pages that need a real one.

use super::*;

/// An HTTP client that behaves like a browser for sign-in: keeps cookies, sends
/// `Accept: text/html`, and follows redirects one by one so tests can watch them.
pub struct Browser {
    pub client: reqwest::blocking::Client,
    pub jar: Arc<reqwest::cookie::Jar>,
}

/// One answer the browser got.
#[derive(Debug)]
pub struct Page {
    pub url: String,
    pub status: u16,
    pub location: Option<String>,
    pub set_cookies: Vec<String>,
    pub body: String,
}

impl Page {
    /// Whether the answer sets a session cookie (a sign-in that went through).
    pub fn sets_session(&self) -> bool {
        self.set_cookies
            .iter()
            .any(|c| c.starts_with("_sso_session="))
    }
}

impl Browser {
    pub fn new() -> Self {
        Browser::with(|builder| builder)
    }

    /// A browser that also trusts the CA in `ca_pem` (for HTTPS tests).
    pub fn trusting(ca_pem: &str) -> Self {
        let ca = reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap();
        Browser::with(|builder| builder.add_root_certificate(ca))
    }

    fn with(
        configure: impl FnOnce(reqwest::blocking::ClientBuilder) -> reqwest::blocking::ClientBuilder,
    ) -> Self {
        let jar = Arc::new(reqwest::cookie::Jar::default());
        let builder = reqwest::blocking::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .cookie_provider(jar.clone())
            .timeout(Duration::from_secs(30));
        let client = configure(builder).build().unwrap();
        Browser { client, jar }
    }

    fn page(url: &str, response: reqwest::blocking::Response) -> Page {
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned());
        let set_cookies = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect();
        let body = response.text().unwrap_or_default();
        Page {
            url: url.to_owned(),
            status,
            location,
            set_cookies,
            body,
        }
    }

    pub fn get(&self, url: &str) -> Page {
        let response = self
            .client
            .get(url)
            .header("Accept", "text/html,application/xhtml+xml")
            .send()
            .unwrap();
        Self::page(url, response)
    }

    pub fn post_form(&self, url: &str, form: &[(String, String)]) -> Page {
        self.post_form_with(url, form, &[])
    }

    /// A form post with the headers a browser adds (`Origin`, `Sec-Fetch-Site`, ...).
    pub fn post_form_with(
        &self,
        url: &str,
        form: &[(String, String)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self
            .client
            .post(url)
            .header("Accept", "text/html")
            .form(form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::page(url, request.send().unwrap())
    }

    /// Follows redirects from `page` until an answer that is not a redirect.
    pub fn follow(&self, mut page: Page) -> Page {
        for _ in 0..20 {
            let Some(location) = page
                .location
                .clone()
                .filter(|_| (300..400).contains(&page.status))
            else {
                return page;
            };
            let next = absolute(&page.url, &location);
            page = self.get(&next);
        }
        panic!("too many redirects, last: {page:?}");
    }

    /// At the IdP: fills and submits its forms (login with `user`, then any consent) until
    /// the IdP sends the browser back to `until_origin`. Returns that redirect's target.
    pub fn sign_in_at_idp(&self, page: Page, user: &str, until_origin: &str) -> String {
        self.sign_in_at_idp_with(page, user, None, until_origin)
    }

    /// Like [`Browser::sign_in_at_idp`], entering `code` as the second factor where the
    /// IdP's login form asks for one (`idp/provider.mjs` with `acrValues`).
    pub fn sign_in_at_idp_with(
        &self,
        mut page: Page,
        user: &str,
        code: Option<&str>,
        until_origin: &str,
    ) -> String {
        for _ in 0..20 {
            if let Some(location) = page
                .location
                .clone()
                .filter(|_| (300..400).contains(&page.status))
            {
                let next = absolute(&page.url, &location);
                if next.starts_with(until_origin) {
                    return next;
                }
                page = self.get(&next);
                continue;
            }
            assert_eq!(page.status, 200, "unexpected page at the IdP: {page:?}");
            let (action, mut fields) = parse_form(&page.body)
                .unwrap_or_else(|| panic!("no form on IdP page: {}", page.body));
            if page.body.contains("name=\"login\"") {
                fields.push(("login".into(), user.into()));
                fields.push(("password".into(), "any-password".into()));
                if let Some(code) = code.filter(|_| page.body.contains("name=\"otp\"")) {
                    fields.push(("otp".into(), code.into()));
                }
            }
            if page.body.contains("name=\"logout\"") && !fields.iter().any(|(k, _)| k == "logout") {
                fields.push(("logout".into(), "yes".into()));
            }
            page = self.post_form(&absolute(&page.url, &action), &fields);
        }
        panic!("sign-in at the IdP did not finish");
    }

    /// The value of cookie `name` the browser would send to `url`.
    pub fn cookie(&self, url: &str, name: &str) -> Option<String> {
        use reqwest::cookie::CookieStore;
        let header = self.jar.cookies(&url.parse().unwrap())?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|pair| pair.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    pub fn set_cookie(&self, url: &str, cookie: &str) {
        self.jar.add_cookie_str(cookie, &url.parse().unwrap());
    }
}

pub fn absolute(base: &str, location: &str) -> String {
    url::Url::parse(base)
        .unwrap()
        .join(location)
        .unwrap()
        .to_string()
}

/// The first form of an HTML page: its action and its hidden inputs.
pub fn parse_form(html: &str) -> Option<(String, Vec<(String, String)>)> {
    let form_start = html.find("<form")?;
    let form = &html[form_start..];
    let form = &form[..form.find("</form>").unwrap_or(form.len())];
    let action = attribute(form, "action").unwrap_or_default();
    let mut fields = Vec::new();
    let mut rest = form;
    while let Some(i) = rest.find("<input") {
        let tag_end = rest[i..].find('>').map_or(rest.len(), |e| i + e);
        let tag = &rest[i..tag_end];
        if tag.contains("type=\"hidden\"") {
            if let (Some(name), value) = (attribute(tag, "name"), attribute(tag, "value")) {
                fields.push((name, value.unwrap_or_default()));
            }
        }
        rest = &rest[tag_end..];
    }
    Some((
        html_unescape(&action),
        fields
            .into_iter()
            .map(|(k, v)| (html_unescape(&k), html_unescape(&v)))
            .collect(),
    ))
}

fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!("{name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(tag[start..end].to_owned())
}

fn html_unescape(s: &str) -> String {
    s.replace("&amp;", "&")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
}

/// Runs one of the Chromium drivers in `idp/` (`browser-login.mjs`, `browser-page.mjs`,
/// `browser-form.mjs`) with `job` and returns the JSON line it prints last. On failure the
/// driver's output and `context` (e.g. the sidecar's log) are shown.
/// Runs `idp/<script>` in Node.js with `job` and reads the JSON line it prints last.
pub fn run_node(script: &str, job: &serde_json::Value) -> serde_json::Value {
    run_chromium(script, job, "")
}

/// A browser signed in at `sidecar` as `user` (its first IdP) and back on `/account`.
pub fn signed_in(sidecar: &Sidecar, user: &str) -> Browser {
    let browser = Browser::new();
    let to_idp = browser.get(&sidecar.url("/oauth2/start?rd=%2Faccount"));
    let callback = browser.sign_in_at_idp(to_idp, user, &sidecar.url("/"));
    assert_eq!(browser.follow(browser.get(&callback)).status, 200);
    browser
}

pub fn run_chromium(driver: &str, job: &serde_json::Value, context: &str) -> serde_json::Value {
    // A browser that hangs (seen once on a loaded CI machine) must fail this test with what
    // it printed, not hold the run until the runner's own timeout says nothing.
    const DEADLINE: Duration = Duration::from_secs(100);
    let mut child = Command::new("node")
        .arg(repo_root().join("idp").join(driver))
        .arg(job.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("node is waited for") {
            break Some(status);
        }
        if started.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let outcome = match status {
        None => format!("was still running after {DEADLINE:?}"),
        Some(status) if !status.success() => format!("failed ({status})"),
        Some(_) => String::new(),
    };
    assert!(
        outcome.is_empty(),
        "{driver} {outcome}:\n{stdout}\n{stderr}\n{context}"
    );
    serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{driver} printed no JSON ({e}): {stdout}"))
}

fn read_in_background(
    pipe: Option<impl std::io::Read + Send + 'static>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut text = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut text);
        }
        text
    })
}

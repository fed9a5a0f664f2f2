//! commercetools' API for tests: npm `@labdigital/commercetools-mock` run by
//! `idp/commercetools.mjs` on a free loopback port (the emulation is not ours: it checks
//! drafts, versions and update actions as commercetools does).

use std::process::{Child, Command, Stdio};

use super::repo_root;

pub struct CommercetoolsEmulation {
    pub url: String,
    child: Child,
}

impl CommercetoolsEmulation {
    /// Starts it for project `shop` with these customer groups.
    pub fn start(customer_groups: &[&str]) -> Self {
        use std::io::BufRead;
        let settings = serde_json::json!({"projectKey": "shop", "customerGroups": customer_groups});
        let mut child = Command::new("node")
            .arg(repo_root().join("idp/commercetools.mjs"))
            .env("CT_CONFIG", settings.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node is installed");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let ready: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("commercetools emulation did not start ({e}): {line:?}"));
        CommercetoolsEmulation {
            url: ready["url"].as_str().unwrap().to_owned(),
            child,
        }
    }

    fn token(&self) -> String {
        let answer: serde_json::Value = reqwest::blocking::Client::new()
            .post(format!("{}/oauth/token", self.url))
            .basic_auth("test", Some("test"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "manage_project:shop"),
            ])
            .send()
            .unwrap()
            .json()
            .unwrap();
        answer["access_token"].as_str().unwrap().to_owned()
    }

    /// GET `/shop/{path}` as an admin would; `None` for 404.
    pub fn get(&self, path: &str) -> Option<serde_json::Value> {
        let response = reqwest::blocking::Client::new()
            .get(format!("{}/shop/{path}", self.url))
            .bearer_auth(self.token())
            .send()
            .unwrap();
        (response.status() != 404).then(|| response.json().unwrap())
    }

    /// POST `/shop/{path}` as an admin would; the created resource.
    pub fn post(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let response = reqwest::blocking::Client::new()
            .post(format!("{}/shop/{path}", self.url))
            .bearer_auth(self.token())
            .json(&body)
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.json().unwrap()
    }

    pub fn customer(&self, key: &str) -> Option<serde_json::Value> {
        self.get(&format!("customers/key={key}"))
    }

    pub fn group_id(&self, key: &str) -> String {
        self.get(&format!("customer-groups/key={key}")).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// SIGSTOP: connections are accepted by the kernel and never answered, as with an API
    /// that hangs. [`CommercetoolsEmulation::resume`] undoes it.
    pub fn pause(&self) {
        self.signal("STOP");
    }

    pub fn resume(&self) {
        self.signal("CONT");
    }

    fn signal(&self, name: &str) {
        Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .unwrap();
    }
}

impl Drop for CommercetoolsEmulation {
    fn drop(&mut self) {
        self.resume();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! The documentation: the key reference names exactly the keys the config parser accepts,
//! and no relative link in the book or the README leads nowhere. (`make docs` builds the
//! book with mdBook; this runs in `make test` without it.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

const REFERENCE: &str = "docs/src/reference/configuration.md";

/// The keys the reference describes: the first cell of each table row, in backticks.
fn documented_keys(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_owned())
        .collect()
}

#[test]
fn the_key_reference_names_every_key_and_only_those() {
    let text = std::fs::read_to_string(root().join(REFERENCE)).unwrap();
    let documented = documented_keys(&text);
    let model: BTreeSet<String> = sso_sidecar::config::every_key().into_iter().collect();
    let missing: Vec<_> = model.difference(&documented).collect();
    let unknown: Vec<_> = documented.difference(&model).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "{REFERENCE}: keys the config accepts but the reference lacks: {missing:?}; \
         keys the reference names that the config does not accept: {unknown:?}"
    );
}

/// Every Markdown file of the book and the README.
fn pages() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "md") {
                out.push(path);
            }
        }
    }
    let mut out = vec![root().join("README.md")];
    walk(&root().join("docs/src"), &mut out);
    out.sort();
    out
}

/// The targets of inline links `[text](target)` outside code.
fn links(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut in_fence = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        // Inline code may hold `](` too.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            found.push(after[..end].trim().to_owned());
            rest = &after[end..];
        }
    }
    found
}

/// GitHub's and mdBook's anchor of a heading: lowercase, spaces to `-`, punctuation gone.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    let mut in_fence = false;
    let mut out = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
        } else if !in_fence && line.starts_with('#') {
            out.insert(anchor(line.trim_start_matches('#')));
        }
    }
    out
}

#[test]
fn every_relative_link_leads_somewhere() {
    let mut broken = Vec::new();
    for page in pages() {
        let text = std::fs::read_to_string(&page).unwrap();
        for link in links(&text) {
            if link.contains("://") || link.starts_with("mailto:") {
                continue; // only loopback is reachable here; outside links are not checked
            }
            let (file, fragment) = link.split_once('#').unwrap_or((&link, ""));
            let target = match file {
                "" => page.clone(),
                file => page.parent().unwrap().join(file),
            };
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", page.display()));
                continue;
            }
            if !fragment.is_empty() && target.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&target).unwrap();
                if !anchors(&text).contains(fragment) {
                    broken.push(format!("{}: {link} (no such heading)", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn the_link_check_sees_what_is_broken() {
    let text = "# A heading\n[ok](#a-heading) `[no](code)` [bad](missing.md)\n```\n[x](y)\n```";
    assert_eq!(links(text), ["#a-heading", "missing.md"]);
    assert!(anchors(text).contains("a-heading"));
    assert_eq!(anchor(" TLS and HTTP/2"), "tls-and-http2");
    assert_eq!(
        anchor("Signed identity: `X-SSO-Assertion`"),
        "signed-identity-x-sso-assertion"
    );
}

#[test]
#[ignore = "prints the keys, for writing the reference"]
fn print_every_key() {
    for key in sso_sidecar::config::every_key() {
        println!("{key}");
    }
}

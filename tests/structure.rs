//! The shape of `src/`, read from the source text: no module imports one that imports it
//! back (directly or around a loop), and pingora is named only by the proxy layer. A
//! module's own tests (`#[cfg(test)] mod tests`) are left out: they may reach anywhere.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The files that may speak pingora: the proxy's phases, the server that assembles it and
/// the admin listener it serves.
const PINGORA_ALLOWED: [&str; 3] = ["src/proxy.rs", "src/server.rs", "src/admin.rs"];

/// A module's path (`["auth", "gate"]`) and its source without its tests.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    code: String,
}

fn modules() -> Vec<Module> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    collect(&root, &root, &mut found);
    found
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<Module>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let file = entry.path();
        if file.is_dir() {
            collect(root, &file, out);
            continue;
        }
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let relative = file.strip_prefix(root).unwrap().with_extension("");
        let mut path: Vec<String> = relative
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect();
        if matches!(
            path.last().map(String::as_str),
            Some("mod" | "lib" | "main")
        ) {
            path.pop();
        }
        let text = std::fs::read_to_string(&file).unwrap();
        out.push(Module {
            path,
            file,
            code: without_tests(&text),
        });
    }
}

/// The source up to its test module, without comments.
fn without_tests(text: &str) -> String {
    let end = text.find("#[cfg(test)]\nmod tests").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every path named after `crate::` or `super::` in `code`, as module path segments from
/// the crate root, with braced groups expanded (`crate::a::{b, c::d}`).
fn named_paths(module: &Module) -> Vec<Vec<String>> {
    let code = &module.code;
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !code.is_char_boundary(i) {
            i += 1;
            continue;
        }
        let rest = &code[i..];
        let boundary = i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_');
        let (base, skip) = if boundary && rest.starts_with("crate::") {
            (Vec::new(), "crate::".len())
        } else if boundary && rest.starts_with("super::") {
            // Each `super::` climbs one module (`a/b.rs` and `a/b/mod.rs` alike are `a::b`).
            let mut base = module.path.clone();
            let mut skip = 0;
            while code[i + skip..].starts_with("super::") {
                base.pop();
                skip += "super::".len();
            }
            (base, skip)
        } else {
            i += 1;
            continue;
        };
        let (tree, used) = use_tree(&code[i + skip..]);
        for leaf in tree {
            let mut full = base.clone();
            full.extend(leaf);
            paths.push(full);
        }
        i += skip + used.max(1);
    }
    paths
}

/// Parses a path or a braced use-tree at the start of `text`; returns its leaves and how
/// many bytes it took.
fn use_tree(text: &str) -> (Vec<Vec<String>>, usize) {
    let mut prefix = Vec::new();
    let mut at = 0;
    loop {
        let rest = &text[at..];
        if rest.starts_with('{') {
            let inner_end = matching_brace(rest);
            let mut leaves = Vec::new();
            for item in split_top_level(&rest[1..inner_end]) {
                let item = item.trim();
                if item.is_empty() || item == "self" {
                    leaves.push(prefix.clone());
                    continue;
                }
                let (sub, _) = use_tree(item);
                for leaf in sub {
                    let mut full = prefix.clone();
                    full.extend(leaf);
                    leaves.push(full);
                }
            }
            return (leaves, at + inner_end + 1);
        }
        let ident: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if ident.is_empty() {
            return (vec![prefix], at);
        }
        at += ident.len();
        prefix.push(ident);
        if text[at..].starts_with("::") {
            at += 2;
        } else {
            return (vec![prefix], at);
        }
    }
}

fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return i;
                }
            }
            _ => {}
        }
    }
    text.len() - 1
}

fn split_top_level(text: &str) -> Vec<&str> {
    let (mut depth, mut start, mut items) = (0, 0, Vec::new());
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items
}

/// Edges between the children of `parent` (the crate root when empty): child `a` depends
/// on child `b` when a module under `a` names a path under `b`.
fn edges_below(modules: &[Module], parent: &[String]) -> BTreeMap<String, BTreeSet<String>> {
    let known: BTreeSet<&[String]> = modules.iter().map(|m| m.path.as_slice()).collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for module in modules {
        let Some(from) = child_of(parent, &module.path) else {
            continue;
        };
        for path in named_paths(module) {
            // The longest prefix that is a module: `crate::auth::gate::Gatekeeper` names
            // `auth::gate`.
            let target = (1..=path.len())
                .rev()
                .map(|n| &path[..n])
                .find(|p| known.contains(p));
            let Some(to) = target.and_then(|t| child_of(parent, t)) else {
                continue;
            };
            if to != from {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    edges
}

fn child_of(parent: &[String], path: &[String]) -> Option<String> {
    (path.len() > parent.len() && path.starts_with(parent)).then(|| path[parent.len()].clone())
}

/// A loop in `edges`, as the modules along it, if there is one.
fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, done, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    edges
        .keys()
        .find_map(|node| visit(node, edges, &mut done, &mut Vec::new()))
}

#[test]
fn no_module_depends_on_itself_through_others() {
    let modules = modules();
    let parents: BTreeSet<Vec<String>> = modules
        .iter()
        .filter(|m| m.file.file_name().is_some_and(|f| f == "mod.rs"))
        .map(|m| m.path.clone())
        .chain([Vec::new()])
        .collect();
    let cycles: Vec<String> = parents
        .iter()
        .filter_map(|parent| {
            let cycle = find_cycle(&edges_below(&modules, parent))?;
            Some(format!(
                "in crate::{}: {}",
                parent.join("::"),
                cycle.join(" -> ")
            ))
        })
        .collect();
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn pingora_is_named_only_by_the_proxy_layer() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let outside: Vec<String> = modules()
        .iter()
        .filter(|m| m.code.contains("pingora::") || m.code.contains("use pingora"))
        .map(|m| {
            let file = m.file.strip_prefix(root).unwrap();
            file.to_string_lossy().into_owned()
        })
        .filter(|f| !PINGORA_ALLOWED.contains(&f.as_str()))
        .collect();
    assert!(
        outside.is_empty(),
        "pingora named outside the proxy layer: {outside:?}"
    );
}

#[test]
fn the_reader_finds_cycles_it_is_shown() {
    // The test above can fail: a made-up pair that names each other is caught.
    let module = |path: &str, code: &str| Module {
        path: path.split("::").map(str::to_owned).collect(),
        file: PathBuf::from(format!("src/{}.rs", path.replace("::", "/"))),
        code: code.to_owned(),
    };
    let pair = [
        module("a", "use crate::b::{self, c::Thing};"),
        module("b", "fn f() { crate::a::g() }"),
        module("b::c", ""),
    ];
    let cycle = find_cycle(&edges_below(&pair, &[])).expect("a and b name each other");
    assert_eq!(cycle.first(), cycle.last());
    let siblings = [
        module("x::p", "use super::q::Thing;"),
        module("x::q", "use super::{p};"),
    ];
    assert!(find_cycle(&edges_below(&siblings, &["x".to_owned()])).is_some());
}

//! Java `.properties` syntax: `#`/`!` comments, `=`/`:`/whitespace separators, `\` line
//! continuations and escapes (`\t`, `\n`, `\uXXXX`, `\=` …), as `java.util.Properties`
//! reads them.

/// The key/value pairs in file order, with the line each starts on.
pub fn parse(text: &str) -> Vec<(usize, String, String)> {
    let mut entries = Vec::new();
    let mut lines = text.lines().enumerate().peekable();
    while let Some((index, line)) = lines.next() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with('!') {
            continue;
        }
        let mut logical = trimmed.to_owned();
        while ends_with_continuation(&logical) {
            logical.pop();
            match lines.next() {
                Some((_, next)) => logical.push_str(next.trim_start()),
                None => break,
            }
        }
        let (key, value) = split_key_value(&logical);
        entries.push((index + 1, unescape(key), unescape(value)));
    }
    entries
}

/// An odd number of trailing backslashes continues the line.
fn ends_with_continuation(line: &str) -> bool {
    line.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1
}

fn split_key_value(line: &str) -> (&str, &str) {
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' => escaped = true,
            '=' | ':' | ' ' | '\t' | '\x0c' => {
                let key = &line[..i];
                let rest = line[i..].trim_start_matches([' ', '\t', '\x0c']);
                // Whitespace may be followed by one `=` or `:` that still separates.
                let rest = if c.is_whitespace() || c == '\x0c' {
                    rest.strip_prefix(['=', ':']).unwrap_or(rest)
                } else {
                    &rest[1..]
                };
                return (key, rest.trim_start_matches([' ', '\t', '\x0c']));
            }
            _ => {}
        }
    }
    (line, "")
}

fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => {
                        out.push_str("\\u");
                        out.push_str(&hex);
                    }
                }
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(text: &str) -> Vec<(String, String)> {
        parse(text).into_iter().map(|(_, k, v)| (k, v)).collect()
    }

    #[test]
    fn separators_comments_and_blank_lines() {
        let text = "# comment\n! also a comment\n\na=1\nb : 2\nc 3\n  d=  4  \ne\n";
        assert_eq!(
            pairs(text),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "2".into()),
                ("c".into(), "3".into()),
                ("d".into(), "4  ".into()),
                ("e".into(), "".into())
            ]
        );
    }

    #[test]
    fn continuations_and_escapes() {
        let text = "json=\\\n  {\\\n    \"a\": 1\\\n  }\nkey\\=with\\:colon=v\\u00e4l\\tue\nback=slash\\\\\nnext=1\n";
        let p = pairs(text);
        assert_eq!(p[0], ("json".into(), "{\"a\": 1}".into()));
        assert_eq!(p[1], ("key=with:colon".into(), "väl\tue".into()));
        assert_eq!(
            p[2],
            ("back".into(), "slash\\".into()),
            "an even number of backslashes does not continue"
        );
        assert_eq!(p[3], ("next".into(), "1".into()));
    }
}

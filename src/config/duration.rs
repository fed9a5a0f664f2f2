//! Durations as ICM writes them (milliseconds, ISO-8601) and as operators like to (`90s`).

use std::time::Duration;

/// Parses a duration given as integer milliseconds, an ISO-8601 duration (`PT1H`,
/// `P1DT2H`) or a short form (`90s`, `3m`, `1h 30m`, `250ms`).
pub fn parse(value: &toml::Value) -> Result<Duration, String> {
    match value {
        toml::Value::Integer(ms) if *ms >= 0 => Ok(Duration::from_millis(*ms as u64)),
        toml::Value::Integer(_) => Err("must not be negative".to_owned()),
        toml::Value::String(text) => parse_text(text),
        other => Err(format!(
            "expected milliseconds or a duration such as \"90s\" or \"PT1H\", found {}",
            other.type_str()
        )),
    }
}

/// Whole seconds as Unix-time arithmetic wants them, saturating rather than wrapping for
/// durations past `i64::MAX` seconds (an IdP's `expires_in` can say anything).
pub fn whole_secs(duration: Duration) -> i64 {
    i64::try_from(duration.as_secs()).unwrap_or(i64::MAX)
}

pub fn parse_text(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<u64>() {
        return Ok(Duration::from_millis(ms));
    }
    if text.starts_with(['P', 'p']) {
        return parse_iso8601(text);
    }
    humantime::parse_duration(text).map_err(|_| {
        format!("\"{text}\" is not a duration (use milliseconds, \"90s\", \"3m\", \"1h\" or ISO-8601 \"PT1H\")")
    })
}

fn parse_iso8601(text: &str) -> Result<Duration, String> {
    let parsed: iso8601::Duration = text
        .to_ascii_uppercase()
        .parse()
        .map_err(|_| format!("\"{text}\" is not an ISO-8601 duration"))?;
    match parsed {
        // Years and months have no fixed length; a token lifetime never needs them.
        iso8601::Duration::YMDHMS { year, month, .. } if year != 0 || month != 0 => Err(format!(
            "\"{text}\": years and months have no fixed length; use days or smaller units"
        )),
        other => Ok(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Result<Duration, String> {
        parse(&toml::Value::String(s.to_owned()))
    }

    #[test]
    fn milliseconds() {
        assert_eq!(
            parse(&toml::Value::Integer(3_600_000)).unwrap(),
            Duration::from_secs(3600)
        );
        assert_eq!(text("60000").unwrap(), Duration::from_secs(60));
        assert!(parse(&toml::Value::Integer(-1)).is_err());
    }

    #[test]
    fn iso8601() {
        assert_eq!(text("PT1H").unwrap(), Duration::from_secs(3600));
        assert_eq!(text("PT3M").unwrap(), Duration::from_secs(180));
        assert_eq!(text("P1DT2H").unwrap(), Duration::from_secs(26 * 3600));
        assert_eq!(text("PT0.5S").unwrap(), Duration::from_millis(500));
        assert!(text("P1M").is_err(), "months are ambiguous");
        assert!(text("PXYZ").is_err());
    }

    #[test]
    fn short_forms() {
        assert_eq!(text("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(text("3m").unwrap(), Duration::from_secs(180));
        assert_eq!(text("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(text("1h 30m").unwrap(), Duration::from_secs(5400));
        assert_eq!(text("250ms").unwrap(), Duration::from_millis(250));
        let err = text("soon").unwrap_err();
        assert!(err.contains("\"soon\" is not a duration"), "{err}");
    }

    #[test]
    fn wrong_type() {
        let err = parse(&toml::Value::Boolean(true)).unwrap_err();
        assert!(err.contains("found boolean"), "{err}");
    }
}

//! `[limits]`: what one client and all of them together may ask of the sidecar.

use super::*;

impl Validator {
    pub(super) fn limits(&mut self, raw: raw::RawLimits) -> Limits {
        let max_header_bytes = self.bounded(
            "limits.max_header_bytes",
            raw.max_header_bytes,
            defaults::limits::MAX_HEADER_BYTES,
            (4 * 1024, 1024 * 1024),
        );
        let max_headers = self.bounded(
            "limits.max_headers",
            raw.max_headers,
            defaults::limits::MAX_HEADERS,
            (16, 256),
        );
        let max_connections = self.bounded(
            "limits.max_connections",
            raw.max_connections,
            defaults::limits::MAX_CONNECTIONS,
            (1, 10_000_000),
        );
        let max_connections_per_client = self.bounded(
            "limits.max_connections_per_client",
            raw.max_connections_per_client,
            defaults::limits::MAX_CONNECTIONS_PER_CLIENT,
            (1, 10_000_000),
        );
        let login_requests_per_minute = match raw.login_requests_per_minute {
            None => defaults::limits::LOGIN_REQUESTS_PER_MINUTE,
            Some(n) if (0..=1_000_000).contains(&n) => n as u32,
            Some(_) => {
                self.problem(
                    "limits.login_requests_per_minute",
                    "must be between 0 (off) and 1000000",
                );
                defaults::limits::LOGIN_REQUESTS_PER_MINUTE
            }
        };
        Limits {
            login_requests_per_minute,
            max_header_bytes,
            max_headers,
            max_connections,
            max_connections_per_client,
        }
    }
}

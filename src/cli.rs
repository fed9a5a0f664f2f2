//! Command line: `run`, `check`, `keygen`.

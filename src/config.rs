//! Configuration shared by several subcommands. Every value is a clap argument
//! backed by an environment variable; the README's table lists them all.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

/// A value that must never reach a log line or `--help` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that has to send it somewhere.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Where the database is and how to reach it.
#[derive(clap::Args, Debug, Clone)]
pub struct DbArgs {
    /// PostgreSQL (>= 15, with pgvector) connection URL. Without it, the embedded
    /// cluster in the data folder is started if needed and used.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<Secret>,

    /// Folder for local state: the embedded PostgreSQL cluster and the local object store.
    #[arg(long, env = "BUYBUDDY_DATA_DIR", default_value = ".data")]
    pub data_dir: PathBuf,

    /// Loopback TCP port of the embedded PostgreSQL cluster.
    #[arg(long, env = "BUYBUDDY_PG_PORT", default_value_t = 54329)]
    pub embedded_pg_port: u16,

    /// Folder holding PostgreSQL's server programs (initdb, pg_ctl) for the embedded
    /// cluster; the newest /usr/lib/postgresql/*/bin is used when unset.
    #[arg(long, env = "BUYBUDDY_PG_BIN_DIR")]
    pub pg_bin_dir: Option<PathBuf>,

    /// Most database connections one process opens.
    #[arg(long, env = "BUYBUDDY_DB_POOL_SIZE", default_value_t = 10)]
    pub db_pool_size: u32,

    /// How long to wait for a database connection before an operation fails
    /// (a worker that fails this way restarts and tries again).
    #[arg(long, env = "BUYBUDDY_DB_ACQUIRE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub db_acquire_timeout: Duration,
}

/// Parses durations written the human way: `250ms`, `30s`, `5m`, `1h 30m`.
pub fn parse_duration(value: &str) -> Result<Duration, String> {
    humantime::parse_duration(value).map_err(|e| format!("{e} (write e.g. 500ms, 30s or 5m)"))
}

/// Formats a duration for messages: `1.5 s`, `250 ms`, `2 min 5 s`.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis < 1_000 {
        format!("{millis} ms")
    } else if millis < 60_000 {
        format!("{:.1} s", duration.as_secs_f64())
    } else {
        let secs = duration.as_secs();
        format!("{} min {} s", secs / 60, secs % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret: Secret = "postgres://u:hunter2@h/db".parse().unwrap();
        assert_eq!(format!("{secret}"), "[redacted]");
        assert!(!format!("{secret:?}").contains("hunter2"));
        assert_eq!(secret.expose(), "postgres://u:hunter2@h/db");
    }

    #[test]
    fn durations_read_and_print_like_a_person_writes_them() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("1m 30s").unwrap(), Duration::from_secs(90));
        assert!(parse_duration("soon").unwrap_err().contains("30s"));
        assert_eq!(format_duration(Duration::from_millis(250)), "250 ms");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1.5 s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2 min 5 s");
    }
}

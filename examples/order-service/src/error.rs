//! The service's startup and serving errors.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Why the service could not start or stopped with an error.
///
/// Its `Display` is one line that includes the cause, for the binary's error message.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    Config(crate::ConfigError),
    /// The database could not be opened, created or migrated.
    Database {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: sqlx::Error,
    },
    /// The port could not be bound.
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The health registry could not be set up.
    Health(palisade_health::ConfigError),
    /// The server failed while serving.
    Serve(std::io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(e) => e.fmt(f),
            Error::Database { path, source } => {
                write!(f, "cannot open database {}: {source}", path.display())
            }
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Health(e) => write!(f, "health registry: {e}"),
            Error::Serve(e) => write!(f, "HTTP server failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Config(e) => Some(e),
            Error::Database { source, .. } => Some(source),
            Error::Bind { source, .. } => Some(source),
            Error::Health(e) => Some(e),
            Error::Serve(e) => Some(e),
        }
    }
}

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
    /// The database could not be opened, created or migrated.
    Database {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: sqlx::Error,
    },
    /// A port could not be bound.
    Bind {
        /// Which server.
        what: &'static str,
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The configured fault settings are out of range.
    Faults(String),
    /// The health registry could not be set up.
    Health(palisade_health::ConfigError),
    /// A server failed while serving.
    Serve(&'static str, Box<dyn std::error::Error + Send + Sync>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Database { path, source } => {
                write!(f, "cannot open database {}: {source}", path.display())
            }
            Error::Bind { what, addr, source } => {
                write!(f, "cannot listen for {what} on {addr}: {source}")
            }
            Error::Faults(e) => write!(f, "invalid fault settings: {e}"),
            Error::Health(e) => write!(f, "health registry: {e}"),
            Error::Serve(what, e) => write!(f, "{what} server failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Database { source, .. } => Some(source),
            Error::Bind { source, .. } => Some(source),
            Error::Faults(_) => None,
            Error::Health(e) => Some(e),
            Error::Serve(_, e) => Some(&**e),
        }
    }
}

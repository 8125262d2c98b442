//! The crate's one error type. Every variant says what failed, where, and what to do about it;
//! [`Error::exit_code`] maps it onto the documented exit codes.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line was understood but its values are wrong (exit code 2).
    #[error("{0}")]
    Usage(String),

    /// An input could not be opened or read.
    #[error("cannot read {path}: {source}\n  {hint}", hint = input_hint(source))]
    Input {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The SQL given with --where / --query / report was refused or failed to plan.
    #[error("{0}")]
    Sql(String),

    /// A store we write to refused or failed.
    #[error("{target}: {message}")]
    Target { target: String, message: String },

    /// Writing the run report or the dead-letter file failed.
    #[error("cannot write {path}: {message}")]
    Report { path: PathBuf, message: String },

    #[error(transparent)]
    DataFusion(#[from] datafusion::error::DataFusionError),

    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),

    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error(transparent)]
    Io(#[from] std::io::Error),

    /// The run started but could not go on (an input failed mid-way).
    #[error("the run stopped: {0}")]
    Stopped(String),

    /// Something we believed impossible happened.
    #[error("internal error (this is a bug in rehydrate, please report it): {0}")]
    Internal(String),
}

fn input_hint(e: &std::io::Error) -> &'static str {
    use std::io::ErrorKind::*;
    match e.kind() {
        NotFound | PermissionDenied | IsADirectory => "Check that the path exists and is readable.",
        _ => "The file is damaged or truncated there; the events before that point were read and actioned.",
    }
}

impl Error {
    /// Exit code: 2 for usage errors (including SQL we refuse or cannot plan), 1 for everything
    /// that stopped the run.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) | Error::Sql(_) => 2,
            _ => 1,
        }
    }

    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }
}

//! The extension's error type and its mapping to SQL errors: every failure reaches the client as an ERROR
//! with a real SQLSTATE, a message and a hint, never as a crash.
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use recsys_model::ModelError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum RecsysError {
    /// An argument is outside what the function accepts (SQLSTATE 22023).
    #[error("{message}")]
    InvalidParameter { message: String, hint: String },
    /// libtorch or the model crate failed (SQLSTATE XX000).
    #[error("{0}")]
    Model(#[from] ModelError),
}

impl RecsysError {
    pub fn invalid_parameter(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::InvalidParameter { message: message.into(), hint: hint.into() }
    }

    fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            Self::InvalidParameter { .. } => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            Self::Model(ModelError::InvalidArgument(_)) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            Self::Model(ModelError::MissingFile(_)) => PgSqlErrorCode::ERRCODE_UNDEFINED_FILE,
            Self::Model(ModelError::InvalidArtefact(_)) => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            Self::Model(ModelError::Torch(_) | ModelError::Embedder(_)) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        }
    }

    fn hint(&self) -> String {
        match self {
            Self::InvalidParameter { hint, .. } => hint.clone(),
            Self::Model(ModelError::InvalidArgument(_)) => "Check the arguments against the function's documentation.".into(),
            Self::Model(ModelError::MissingFile(_)) => "Run scripts/bootstrap.sh, or point RECSYS_MINILM_DIR at the model files.".into(),
            Self::Model(ModelError::InvalidArtefact(_)) => "Register a new version with trainer train, or activate an earlier one.".into(),
            Self::Model(ModelError::Torch(_) | ModelError::Embedder(_)) => {
                "libtorch raised an exception; the server log has the details. Please report it with the statement.".into()
            }
        }
    }

    /// Raises this error as a SQL ERROR; does not return.
    #[track_caller]
    pub fn raise(self) -> ! {
        let report = ErrorReport::new(self.sqlstate(), self.to_string(), "pg_recsys").set_hint(self.hint());
        report.report(PgLogLevel::ERROR);
        unreachable!("ERROR-level reports do not return")
    }
}

/// `result.or_raise()` turns an extension error into a SQL ERROR at the SQL boundary.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T, E: Into<RecsysError>> OrRaise<T> for Result<T, E> {
    #[track_caller]
    fn or_raise(self) -> T {
        self.unwrap_or_else(|error| error.into().raise())
    }
}

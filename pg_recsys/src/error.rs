//! The extension's error type and its mapping to SQL errors: every failure reaches the client as an ERROR
//! with a real SQLSTATE, a message and a hint, never as a crash.
use pgrx::pg_sys::panic::ErrorReport;
use pgrx::{PgLogLevel, PgSqlErrorCode};
use recsys_model::ModelError;
use thiserror::Error;

/// Every error the extension reports, each with its SQLSTATE, message, detail and hint (`OrRaise::or_raise` turns it
/// into a Postgres ERROR).
#[derive(Debug, Error)]
pub enum RecsysError {
    /// An argument is outside what the function accepts (SQLSTATE 22023).
    #[error("{message}")]
    InvalidParameter { message: String, hint: String },
    /// libtorch or the model crate failed (SQLSTATE XX000).
    #[error("{0}")]
    Model(#[from] ModelError),
    /// No model version is active (SQLSTATE 55000).
    #[error("no model is active")]
    NoActiveModel,
    /// The active model's stored artefact cannot be used (SQLSTATE XX001).
    #[error("model version {version} cannot be loaded: {source}")]
    CorruptModel { version: i64, source: ModelError },
    /// A movie id that is not in recsys.movies (SQLSTATE 42704).
    #[error("movie {0} does not exist")]
    UnknownMovie(i32),
    /// A user the active model was trained without, where a learned representation is needed (SQLSTATE 42704).
    #[error("user {0} is not known to the active model")]
    UnknownUser(i32),
    /// Another batch refresh holds the refresh lock (SQLSTATE 55P03).
    #[error("another recsys_refresh_batch is running")]
    RefreshRunning,
    /// A model version that is not in recsys.models (SQLSTATE 42704).
    #[error("model version {0} does not exist")]
    UnknownVersion(i64),
    /// The active model was not activated over an earlier one (SQLSTATE 55000).
    #[error("there is no earlier model version to roll back to")]
    NothingToRollBack,
    /// The caller lacks a privilege the operation needs (SQLSTATE 42501).
    #[error("{message}")]
    InsufficientPrivilege { message: String, hint: String },
    /// A function that writes was called on a hot standby (SQLSTATE 25006).
    #[error("{0} cannot run on a hot standby")]
    ReadOnlyStandby(&'static str),
    /// The database holds the objects of an older pg_recsys than the installed library (SQLSTATE 55000).
    #[error("this database holds the objects of an older pg_recsys version than the installed library")]
    SchemaNotUpdated,
    /// Anything else that should not happen (SQLSTATE XX000).
    #[error("{0}")]
    Internal(String),
}

impl From<tch::TchError> for RecsysError {
    fn from(error: tch::TchError) -> Self {
        Self::Model(ModelError::Torch(error))
    }
}

impl RecsysError {
    /// 22023 with the hint for the caller.
    pub fn invalid_parameter(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::InvalidParameter { message: message.into(), hint: hint.into() }
    }

    /// XX000: a state the extension does not expect.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal(message.into())
    }

    /// Maps an SPI failure to an internal error that says what was being done: `.map_err(RecsysError::spi("…"))`.
    pub fn spi(context: impl Into<String>) -> impl Fn(pgrx::spi::Error) -> Self {
        let context = context.into();
        move |e| Self::Internal(format!("{context}: {e}"))
    }

    /// Fails with 25006 when this server is a hot standby: `operation` writes to the database.
    pub fn refuse_on_standby(operation: &'static str) -> Result<(), Self> {
        // SAFETY: RecoveryInProgress reads shared memory state and may be called from any backend.
        if unsafe { pgrx::pg_sys::RecoveryInProgress() } {
            Err(Self::ReadOnlyStandby(operation))
        } else {
            Ok(())
        }
    }

    /// XX001 for a stored version that does not load, naming the version.
    pub fn corrupt_model(version: i64, source: ModelError) -> Self {
        Self::CorruptModel { version, source }
    }

    fn sqlstate(&self) -> PgSqlErrorCode {
        match self {
            Self::NoActiveModel => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::CorruptModel { .. } => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            Self::UnknownMovie(_) | Self::UnknownUser(_) => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            Self::Internal(_) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
            Self::RefreshRunning => PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE,
            Self::ReadOnlyStandby(_) => PgSqlErrorCode::ERRCODE_READ_ONLY_SQL_TRANSACTION,
            Self::UnknownVersion(_) => PgSqlErrorCode::ERRCODE_UNDEFINED_OBJECT,
            Self::NothingToRollBack | Self::SchemaNotUpdated => PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
            Self::InsufficientPrivilege { .. } => PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE,
            Self::InvalidParameter { .. } => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            Self::Model(ModelError::InvalidArgument(_)) => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            Self::Model(ModelError::MissingFile(_)) => PgSqlErrorCode::ERRCODE_UNDEFINED_FILE,
            Self::Model(ModelError::Unreadable { source, .. }) if source.kind() == std::io::ErrorKind::PermissionDenied => {
                PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE
            }
            Self::Model(ModelError::Unreadable { .. } | ModelError::MappedFile(_)) => PgSqlErrorCode::ERRCODE_IO_ERROR,
            Self::Model(ModelError::InvalidArtefact(_) | ModelError::InvalidConfig(_)) => PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            Self::Model(ModelError::Torch(_) | ModelError::Embedder(_) | ModelError::Training(_)) => PgSqlErrorCode::ERRCODE_INTERNAL_ERROR,
        }
    }

    fn hint(&self) -> String {
        match self {
            Self::NoActiveModel => "Train and activate a model: trainer train --activate.".into(),
            Self::CorruptModel { .. } => "Activate another version, or register a new one with trainer train --activate.".into(),
            Self::UnknownMovie(_) => "Import the movie into recsys.movies first, or use recsys_predict_new for a movie not in the catalogue.".into(),
            Self::UnknownUser(_) => "Only users with ratings in the model's training data have a learned representation; retrain to include newer users.".into(),
            Self::Internal(_) => "Please report this with the statement that caused it.".into(),
            Self::InvalidParameter { hint, .. } | Self::InsufficientPrivilege { hint, .. } => hint.clone(),
            Self::RefreshRunning => "Wait for the running refresh to commit (see pg_stat_activity), then call it again.".into(),
            Self::ReadOnlyStandby(_) => "Run it on the primary: the result replicates to this standby, whose connections switch on their next statement.".into(),
            Self::UnknownVersion(_) => "SELECT version, status FROM recsys.model_versions lists the registered versions.".into(),
            Self::NothingToRollBack => "Activate a specific version with recsys_activate(version).".into(),
            Self::SchemaNotUpdated => "Run ALTER EXTENSION pg_recsys UPDATE; in this database: ratings, models and the batch are kept.".into(),
            Self::Model(ModelError::InvalidArgument(_)) => "Check the arguments against the function's documentation.".into(),
            Self::Model(ModelError::MissingFile(_) | ModelError::Unreadable { .. }) => {
                "The server process must be able to read it: model artefacts come from trainer train --out, the MiniLM files from scripts/bootstrap.sh (see recsys.minilm_dir).".into()
            }
            Self::Model(ModelError::MappedFile(_)) => {
                "A mapped file (MiniLM's weights, or a shared table under $PGDATA/pg_recsys) is damaged or cannot be written: remove it to have it written again.".into()
            }
            Self::Model(ModelError::InvalidArtefact(_) | ModelError::InvalidConfig(_)) => {
                "Register a new version with trainer train, or activate an earlier one.".into()
            }
            Self::Model(ModelError::Torch(_) | ModelError::Embedder(_) | ModelError::Training(_)) => {
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

//! The API's errors: a status and a message for the client; internal details go to the log.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed (400).
    #[error("{0}")]
    BadRequest(String),
    /// A mutating route without the right bearer token (401).
    #[error("this route needs `Authorization: Bearer <token>` with the server's token")]
    Unauthorized,
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with what exists (409): a name taken, a version in use.
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the upload is {size} bytes; this server accepts at most {limit} (flowlet serve --max-upload)"
    )]
    TooLarge { size: usize, limit: usize },
    /// Well-formed but unusable (422): not a component, wrong world, invalid manifest.
    #[error("{0}")]
    Unprocessable(String),
    /// Not now (503): the pipeline is starting.
    #[error("{0}")]
    Unavailable(String),
    /// Something failed on the server (500); `0` goes to the log, not to the client.
    #[error("internal error")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) => StatusCode::CONFLICT,
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// An I/O or other server-side failure: logged with `what`, reported as 500.
    pub fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        Self::Internal(format!("{what}: {e}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Self::Internal(detail) = &self {
            tracing::error!("control plane: {detail}");
        }
        let body = serde_json::json!({ "error": self.to_string() });
        (self.status(), Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

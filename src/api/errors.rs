//! The answers a stream operation refuses with: a 4xx (or 503) whose JSON body names the
//! problem.

use poem_openapi::{ApiResponse, Object, payload::Json};

use crate::{generator::ParamsError, streams::Refusal};

/// An error: what is wrong, in words meant for the client.
#[derive(Debug, Object)]
pub struct ErrorBody {
    /// What is wrong, naming the parameter or header at fault.
    pub error: String,
}

impl ErrorBody {
    /// A body saying `error`.
    pub fn json(error: impl Into<String>) -> Json<Self> {
        Json(Self {
            error: error.into(),
        })
    }
}

/// Seconds a client refused for lack of room is told to wait.
pub const RETRY_AFTER_SECS: u64 = 1;

/// Why a stream was not started.
#[derive(Debug, ApiResponse)]
pub enum StreamError {
    /// A parameter or header is malformed or out of range; `error` names it.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// This client already holds its share of streams (`--max-streams-per-client`, over all
    /// transports): close one, or retry after `Retry-After` seconds.
    #[oai(status = 429)]
    TooMany(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Too many streams are open: retry after `Retry-After` seconds.
    #[oai(status = 503)]
    Busy(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

impl StreamError {
    /// A 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::BadRequest(ErrorBody::json(message))
    }
}

impl From<ParamsError> for StreamError {
    fn from(err: ParamsError) -> Self {
        Self::bad_request(err.to_string())
    }
}

impl From<Refusal> for StreamError {
    fn from(refusal: Refusal) -> Self {
        let body = ErrorBody::json(refusal.to_string());
        match refusal {
            Refusal::Busy { .. } => Self::Busy(body, RETRY_AFTER_SECS),
            Refusal::FairShare { .. } => Self::TooMany(body, RETRY_AFTER_SECS),
        }
    }
}

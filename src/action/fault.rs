//! Error classes, in one place for every target: whether another attempt can help, the
//! service's own code and message, whether a lost answer means the request may have been
//! applied, and whether a refused request may be the fault of one of its items.

use aws_sdk_eventbridge::config::http::HttpResponse;
use aws_sdk_eventbridge::error::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

/// Why a request, an item or a commit did not succeed.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// The service's error code (`ThrottlingException`, `ValidationException`, `23514`, …).
    pub code: String,
    pub message: String,
    /// Another attempt may succeed (throttling, 5xx, timeouts, lost connections).
    pub retryable: bool,
    /// The request may have been applied although no answer came back (a lost response): a
    /// resend may repeat it, which no client can avoid.
    pub maybe_applied: bool,
    /// A whole request was refused for what may be one of its items: the driver resends the
    /// items one by one, so that only the offending one fails.
    pub per_item: bool,
}

impl Fault {
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            retryable: false,
            maybe_applied: false,
            per_item: false,
        }
    }

    pub fn retryable(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            retryable: true,
            ..Self::permanent(code, message)
        }
    }

    /// A fault of `code`, retryable when the code is one of the throttling and transient codes
    /// AWS services use.
    pub fn from_code(code: impl Into<String>, message: impl Into<String>) -> Self {
        let code = code.into();
        let retryable = is_retryable_code(&code);
        Self {
            retryable,
            ..Self::permanent(code, message)
        }
    }
}

/// The error codes of AWS services that are worth another attempt (EventBridge, Lambda,
/// DynamoDB); anything else is permanent unless its HTTP status says otherwise.
const RETRYABLE_CODES: &[&str] = &[
    "ThrottlingException",
    "Throttling",
    "ThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "InternalFailure",
    "InternalException",
    "InternalServerError",
    "InternalServerException",
    "ServiceException",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "RequestTimeout",
    "RequestTimeoutException",
    "EC2ThrottledException",
    "ResourceNotReadyException",
    "ResourceConflictException",
    "TransactionInProgressException",
];

fn is_retryable_code(code: &str) -> bool {
    RETRYABLE_CODES.contains(&code) || code.contains("Throttl")
}

/// Classifies a failed AWS SDK call: throttling codes, HTTP 429 and 5xx, timeouts and connection
/// failures are retryable; a response that was lost after the request went out may have been
/// applied.
pub fn classify_sdk<E>(err: &SdkError<E, HttpResponse>) -> Fault
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    match err {
        SdkError::ServiceError(e) => {
            let status = e.raw().status().as_u16();
            let code = e
                .err()
                .code()
                .map(str::to_owned)
                .unwrap_or_else(|| format!("HTTP{status}"));
            let message = e.err().message().unwrap_or("").to_owned();
            let retryable = is_retryable_code(&code) || status == 429 || status >= 500;
            Fault {
                retryable,
                ..Fault::permanent(code, message)
            }
        }
        SdkError::TimeoutError(_) => Fault {
            maybe_applied: true,
            ..Fault::retryable("Timeout", "the request timed out")
        },
        SdkError::DispatchFailure(e) => {
            Fault::retryable("DispatchFailure", format!("the request could not be sent: {e:?}"))
        }
        SdkError::ResponseError(e) => Fault {
            maybe_applied: true,
            ..Fault::retryable("ResponseError", format!("the response was lost or unreadable: {e:?}"))
        },
        other => Fault::permanent("RequestFailed", format!("{other:?}")),
    }
}

/// A server error as a fault: SQLSTATE classes 08 (connection), 40 (serialization, deadlock),
/// 53 (resources) and 57 (shutdown) are retryable; 22 (data) and 23 (integrity: CHECK, NOT NULL,
/// foreign keys) are caused by rows, so the batch is split to find them.
pub fn classify_sql(e: &sqlx::Error) -> Fault {
    match e {
        sqlx::Error::Database(db) => {
            let code = db
                .code()
                .map(|c| c.into_owned())
                .unwrap_or_else(|| "DatabaseError".into());
            let class = &code[..code.len().min(2)];
            let message = db.message().to_owned();
            let mut f = Fault::permanent(code.clone(), message);
            f.retryable = matches!(class, "08" | "40" | "53" | "57");
            f.per_item = matches!(class, "22" | "23" | "HY" | "42") && !f.retryable;
            f
        }
        sqlx::Error::Io(err) => Fault {
            maybe_applied: true,
            ..Fault::retryable("IoError", err.to_string())
        },
        sqlx::Error::PoolTimedOut => Fault::retryable("PoolTimedOut", "no connection to the server within 30 s"),
        sqlx::Error::Protocol(m) => Fault::retryable("ProtocolError", m.clone()),
        other => Fault::permanent("DatabaseError", other.to_string()),
    }
}

/// An HTTP answer as a fault (OpenSearch and other HTTP services): 408, 429 and 5xx are
/// retryable; 413 (the request is too large) may be the fault of one large item, so the request
/// is split; anything else is permanent.
pub fn classify_http(status: u16, code: impl Into<String>, message: impl Into<String>) -> Fault {
    let mut f = Fault::permanent(code, message);
    f.retryable = matches!(status, 408 | 429) || status >= 500;
    f.per_item = status == 413;
    f
}

/// One item's error inside an answer that succeeded as a whole (an OpenSearch `_bulk` item):
/// rejected for load (429, `es_rejected_execution_exception`) or failed on an unavailable shard
/// (5xx) is retryable alone; anything else (a mapping conflict) fails the item.
pub fn classify_item(status: u16, kind: &str, reason: &str) -> Fault {
    let mut f = classify_http(status, kind, reason);
    f.retryable |= kind == "es_rejected_execution_exception";
    f.per_item = false;
    f
}

/// A request that got no HTTP answer: nothing was sent when the connection could not be made;
/// otherwise the request may have been applied.
pub fn classify_transport(connected: bool, timed_out: bool, message: impl Into<String>) -> Fault {
    let code = if timed_out { "Timeout" } else { "ConnectionError" };
    Fault {
        maybe_applied: connected,
        ..Fault::retryable(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_answers_are_classified_in_one_place() {
        assert!(classify_http(429, "x", "").retryable);
        assert!(classify_http(503, "x", "").retryable);
        assert!(!classify_http(400, "x", "").retryable);
        assert!(classify_http(413, "x", "").per_item);
        assert!(classify_item(400, "es_rejected_execution_exception", "").retryable);
        assert!(!classify_item(400, "mapper_parsing_exception", "").retryable);
        assert!(!classify_item(413, "x", "").per_item);
        assert!(classify_transport(true, true, "").maybe_applied);
        assert!(!classify_transport(false, false, "").maybe_applied);
    }

    #[test]
    fn codes_are_classified_in_one_place() {
        assert!(Fault::from_code("ThrottlingException", "").retryable);
        assert!(Fault::from_code("ProvisionedThroughputExceededException", "").retryable);
        assert!(Fault::from_code("SomethingThrottled", "").retryable);
        assert!(!Fault::from_code("ValidationException", "").retryable);
        assert!(!Fault::from_code("AccessDeniedException", "").retryable);
    }
}

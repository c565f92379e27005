//! Init caching's calls (`/restore/next`, `/restore/error`) and the
//! credentials endpoint a restored runtime reads.

use axum::extract::{Request, State};
use axum::response::Response;
use fatalerror::ErrorType;
use http::StatusCode;
use interop::ErrorInvokeResponse;

use crate::api::RuntimeApi;
use crate::body::json_response;
use crate::body::{accepted, header_str};
use crate::error::ApiError;
use crate::handlers::{read_error_body, reported_error};

type Reply = Result<Response, ApiError>;

/// `GET /2021-04-23/credentials`: the configured credentials, for a caller
/// that presents the sandbox's authorization token.
pub(crate) async fn credentials(State(api): State<RuntimeApi>, req: Request) -> Reply {
    let not_found = || ApiError::not_found(req.method(), req.uri().path());
    let creds = api.config.credentials.as_ref().ok_or_else(not_found)?;
    let presented = header_str(req.headers(), "authorization");
    if presented != Some(creds.authorization_token.as_str()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            ErrorType::InvalidRequestFormat,
            "Missing or wrong Authorization header (AWS_CONTAINER_AUTHORIZATION_TOKEN)",
        ));
    }
    let expiration = std::time::SystemTime::now() + std::time::Duration::from_secs(6 * 3600);
    let body = serde_json::json!({
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key,
        "Token": creds.session_token.clone().unwrap_or_default(),
        "Expiration": httpdate_rfc3339(expiration),
    });
    Ok(json_response(
        StatusCode::OK,
        serde_json::to_vec(&body).unwrap_or_default(),
    ))
}

/// RFC 3339 UTC (seconds) of a time, without a date crate.
fn httpdate_rfc3339(t: std::time::SystemTime) -> String {
    let secs = t
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    // Civil from days (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `GET /runtime/restore/next`: answers 200 once the sandbox is restored.
/// The restore routes exist only with init caching.
fn init_caching(api: &RuntimeApi, path: &str) -> Result<(), ApiError> {
    if api.config.init_caching {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorType::NotFound,
        format!("{path} needs init caching (--enable-init-caching)"),
    ))
}

pub(crate) async fn restore_next(State(api): State<RuntimeApi>, uri: http::Uri) -> Reply {
    init_caching(&api, uri.path())?;
    let rx = api.rendezvous.restore_next()?;
    rx.await.map_err(|_| {
        ApiError::new(
            StatusCode::GONE,
            ErrorType::InvalidStateTransition,
            "The sandbox was reset while this call waited for a restore",
        )
    })?;
    Ok(json_response(StatusCode::OK, &b"{}"[..]))
}

/// `POST /runtime/restore/error`.
pub(crate) async fn restore_error(State(api): State<RuntimeApi>, req: Request) -> Reply {
    init_caching(&api, req.uri().path())?;
    api.rendezvous.check_restore_error()?;
    let (headers, body) = read_error_body(req).await?;
    let error = reported_error(&headers, &body);
    tracing::warn!(error_type = %error.error_type, "runtime reported a restore error");
    let payload = (!body.is_empty()).then(|| body.to_vec());
    api.rendezvous.restore_error(ErrorInvokeResponse {
        function_error: error,
        payload,
    })?;
    Ok(accepted())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_dates() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_795_408_792);
        assert_eq!(httpdate_rfc3339(t), "2026-11-23T04:39:52Z");
        assert_eq!(
            httpdate_rfc3339(std::time::UNIX_EPOCH),
            "1970-01-01T00:00:00Z"
        );
    }
}

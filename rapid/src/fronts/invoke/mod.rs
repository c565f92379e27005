//! The Invoke API (SPEC §4): `POST /2015-03-31/functions/{name}/invocations`
//! and `POST /2021-11-15/functions/{name}/response-streaming-invocations`.
//!
//! Validates the request, submits it to the function's sandbox and turns the
//! reply into the HTTP answer. Every failure of the function or the sandbox
//! is `200` + `X-Amz-Function-Error: Unhandled` + a JSON body; what the
//! sandbox refused is a service error.

pub mod body;
pub mod eventstream;
mod request;

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use fatalerror::ErrorType;
use http::{header, HeaderValue, Method, StatusCode, Uri};
use interop::RequestId;
use runtime_api::shortcut::{Picked, Shortcut};
use runtime_api::ResponseBuilderExt;
use tracing::Instrument;

pub use request::{decode_client_context, InvocationType};

use self::body::{EventStream, InvokeBody};
use super::aws::{self, Answer};
use super::Drain;
use crate::sandbox::{
    Body, Budget, FunctionTable, Invocation, InvokeError, LambdaContext, Reply, ResolveError,
    Resolved,
};

/// The two invoke endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    /// `POST /2015-03-31/functions/{name}/invocations`.
    Invocations,
    /// `POST /2021-11-15/functions/{name}/response-streaming-invocations`.
    ResponseStreaming,
}

/// The Invoke API's state.
pub struct InvokeApi {
    table: FunctionTable,
    drain: Drain,
}

/// The Invoke API's refusals, rendered as its JSON errors.
#[derive(Debug)]
pub enum InvokeApiError {
    /// No invoke route (404).
    NoRoute(Method, String),
    /// An invoke route with another method (405).
    NotPost(Method),
    /// A name that names no function here (400 or 404, as AWS answers).
    Resolve(ResolveError),
    /// A malformed request (400).
    InvalidRequest(String),
    /// An event larger than AWS takes for its invocation type (413).
    TooLarge {
        /// The limit.
        limit: usize,
        /// An `Event` invocation (else synchronous).
        event: bool,
        /// The request's size, when known.
        size: Option<u64>,
        /// The whole request was read (the connection may be reused).
        complete: bool,
    },
    /// The sandbox refused the invocation.
    Sandbox(InvokeError),
}

impl IntoResponse for InvokeApiError {
    fn into_response(self) -> Response {
        let answer = match self {
            InvokeApiError::NoRoute(m, p) => aws::error_json(
                StatusCode::NOT_FOUND,
                ErrorType::ResourceNotFoundException,
                format!("No route for {m} {p}"),
            ),
            InvokeApiError::NotPost(m) => aws::error_json(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorType::MethodNotAllowed,
                format!("Method {m} is not allowed; invoke with POST"),
            ),
            InvokeApiError::Resolve(e) => {
                let status = match e {
                    ResolveError::Invalid { .. } | ResolveError::QualifierMismatch => {
                        StatusCode::BAD_REQUEST
                    }
                    ResolveError::WrongRegion { .. } | ResolveError::NotFound { .. } => {
                        StatusCode::NOT_FOUND
                    }
                };
                aws::error_json(status, e.error_type(), e.to_string())
            }
            InvokeApiError::TooLarge {
                limit,
                event,
                size,
                complete,
            } => {
                let mut a = aws::error_json(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorType::RequestEntityTooLargeException,
                    request::too_large_message(limit, event, size),
                );
                if !complete {
                    // The rest of the body is not read: the connection cannot be reused.
                    a.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                a
            }
            InvokeApiError::InvalidRequest(m) => aws::error_json(
                StatusCode::BAD_REQUEST,
                ErrorType::InvalidRequestContentException,
                m,
            ),
            InvokeApiError::Sandbox(e) => match aws::service_status(&e) {
                Some(status) => aws::refusal(status, &e),
                None => aws::error_json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorType::ServiceException,
                    e.to_string(),
                ),
            },
        };
        let mut answer = answer.map(Body::new);
        // Every answer carries a request id; an invoke's own replaces this one.
        set_request_id(&mut answer, &RequestId::generate());
        answer
    }
}

fn set_request_id<B>(answer: &mut http::Response<B>, id: &RequestId) {
    if let Ok(v) = HeaderValue::from_str(id.as_str()) {
        answer.headers_mut().insert(aws::REQUEST_ID, v);
    }
}

const INVOCATIONS: (&str, &str) = ("/2015-03-31/functions/", "/invocations");
const STREAMING: (&str, &str) = ("/2021-11-15/functions/", "/response-streaming-invocations");

/// The Invoke API over the functions of `table`: a `POST` to either endpoint
/// with a plain function name goes straight to the handler (a name that
/// needs percent-decoding, and every other request, through the router).
pub fn router(table: FunctionTable, drain: Drain) -> Shortcut<Arc<InvokeApi>> {
    let api = Arc::new(InvokeApi { table, drain });
    Shortcut::new(api.clone(), hot, routes(api))
}

fn hot(api: &Arc<InvokeApi>, req: Request) -> Picked {
    if req.method() != Method::POST {
        return Picked::Router(req);
    }
    let path = req.uri().path();
    let name_in = |(prefix, suffix): (&str, &str)| {
        path.strip_prefix(prefix)?
            .strip_suffix(suffix)
            .filter(|n| !n.is_empty() && !n.bytes().any(|b| b == b'/' || b == b'%'))
    };
    let found = match name_in(INVOCATIONS) {
        Some(name) => Some((Endpoint::Invocations, name.to_owned())),
        None => name_in(STREAMING).map(|name| (Endpoint::ResponseStreaming, name.to_owned())),
    };
    let Some((endpoint, name)) = found else {
        return Picked::Router(req);
    };
    let api = State(api.clone());
    Picked::Hot(Box::pin(invoke(api, Ok(Path(name)), req, endpoint)))
}

/// Every route, as the router serves them.
fn routes(api: Arc<InvokeApi>) -> Router {
    Router::new()
        .route(
            &format!("{}{{name}}{}", INVOCATIONS.0, INVOCATIONS.1),
            post(|s, p, r| invoke(s, p, r, Endpoint::Invocations)),
        )
        .route(
            &format!("{}{{name}}{}", STREAMING.0, STREAMING.1),
            post(|s, p, r| invoke(s, p, r, Endpoint::ResponseStreaming)),
        )
        .fallback(
            |m: Method, u: Uri| async move { InvokeApiError::NoRoute(m, u.path().to_owned()) },
        )
        .method_not_allowed_fallback(|m: Method| async move { InvokeApiError::NotPost(m) })
        .with_state(api)
}

async fn invoke(
    State(api): State<Arc<InvokeApi>>,
    name: Result<Path<String>, PathRejection>,
    req: Request,
    endpoint: Endpoint,
) -> Response {
    // A name that is not valid UTF-8 once percent-decoded: AWS's JSON 400,
    // not axum's plain-text rejection (found by the invoke_api fuzz target).
    let name = match name {
        Ok(Path(name)) => name,
        Err(e) => {
            return InvokeApiError::InvalidRequest(format!("Invalid function name: {e}"))
                .into_response()
        }
    };
    let id = RequestId::generate();
    if name.is_empty() {
        let mut answer = InvokeApiError::NoRoute(req.method().clone(), req.uri().path().to_owned())
            .into_response();
        set_request_id(&mut answer, &id);
        return answer;
    }
    let qualifier = request::qualifier(req.uri());
    let target = match api.table.resolve(&name, qualifier.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            let mut answer = InvokeApiError::Resolve(e).into_response();
            set_request_id(&mut answer, &id);
            return answer;
        }
    };
    let function = target.function;
    let span = tracing::debug_span!("invoke", request_id = %id);
    let mut answer = match api
        .run(function, target.invoked_arn, id.clone(), endpoint, req)
        .instrument(span)
        .await
    {
        Ok(a) => a,
        Err(e) => {
            let mut answer = e.into_response();
            set_request_id(&mut answer, &id);
            answer.map(InvokeBody::Http)
        }
    };
    // Every answer to an invoke carries its ids, errors included.
    aws::ensure_header(&mut answer, aws::REQUEST_ID, id.as_str());
    aws::ensure_header(&mut answer, aws::EXECUTED_VERSION, &function.id.version);
    answer.map(Body::new)
}

impl InvokeApi {
    async fn run(
        &self,
        function: &Resolved,
        invoked_arn: String,
        id: RequestId,
        endpoint: Endpoint,
        req: Request,
    ) -> Result<Answer, InvokeApiError> {
        if self.drain.is_closed() {
            return Ok(aws::shutting_down());
        }
        let (mut parts, body) = req.into_parts();
        let h = &parts.headers;
        let kind = InvocationType::parse(request::header_str(h, request::INVOCATION_TYPE))
            .map_err(InvokeApiError::InvalidRequest)?;
        let client_context = request::client_context(h)?;
        let payload = request::read_payload(h, body, kind == InvocationType::Event).await?;
        if kind == InvocationType::DryRun {
            return Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body_or_500(InvokeBody::default()));
        }
        let log_tail = request::header_str(h, request::LOG_TYPE)
            .is_some_and(|v| v.eq_ignore_ascii_case("Tail"));
        // The function sees the event as `POST /`, with the request's headers.
        parts.uri = Uri::default();
        let inv = Invocation {
            call_id: None,
            id,
            request: http::Request::from_parts(parts, Body::from(payload)),
            context: LambdaContext {
                client_context,
                cognito_identity: None,
                invoked_function_arn: Some(invoked_arn),
            },
            budget: Budget::Function,
            log_tail,
            typed_result: false,
        };
        let pending = function
            .sandbox
            .submit(inv)
            .await
            .map_err(InvokeApiError::Sandbox)?;
        if kind == InvocationType::Event {
            // Run it to its end; nobody waits for the answer.
            tokio::spawn(async move { drain_reply(pending.await).await });
            return Ok(Response::builder()
                .status(StatusCode::ACCEPTED)
                .body_or_500(InvokeBody::default()));
        }
        let reply = pending.await;
        Ok(match endpoint {
            Endpoint::Invocations => aws::classic(reply.log_tail.as_ref(), reply.outcome).await,
            Endpoint::ResponseStreaming => event_stream(reply).await,
        })
    }
}

/// Read an unwanted answer to its end (an `Event` invoke's).
async fn drain_reply(reply: Reply) {
    use http_body_util::BodyExt;
    if let Ok(r) = reply.outcome {
        let _ = InvokeBody::raw(r.body).collect().await;
    }
}

/// The response-streaming answer: AWS event-stream messages.
async fn event_stream(reply: Reply) -> Answer {
    let b = aws::ok_with_tail(reply.log_tail.as_ref())
        .header(header::CONTENT_TYPE, "application/vnd.amazon.eventstream");
    let outcome = match reply.outcome {
        Ok(r) if !r.status.is_success() => Err(aws::answered(r).await),
        other => other,
    };
    match outcome {
        Ok(r) => {
            let ct = r
                .headers
                .get(header::CONTENT_TYPE)
                .cloned()
                .unwrap_or(HeaderValue::from_static("application/octet-stream"));
            b.header("x-amzn-response-content-type", ct)
                .body_or_500(InvokeBody::events(r.body))
        }
        Err(e) => match aws::service_status(&e) {
            Some(status) => aws::refusal(status, &e),
            None => {
                let doc = e.to_lambda();
                let (code, details) = aws::reported_error(&doc);
                tracing::debug!(error_type = %code, "streaming invoke answered with an error");
                b.header(aws::FUNCTION_ERROR, "Unhandled")
                    .body_or_500(InvokeBody::EventStream(EventStream::failed(
                        &code, &details,
                    )))
            }
        },
    }
}

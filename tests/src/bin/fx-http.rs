//! A web function on the real `lambda_http` crate, as a function URL runs it.
//! `FX_HTTP=stream` serves it with `run_with_streaming_response` (the
//! http-integration prelude), else with `run` (the buffered response object).
//!
//! * `/echo` — JSON: method, path, query `q` (every value), headers, cookies,
//!   the body's base64 and length
//! * `/status/N` — status N, body `status N`
//! * `/cookies` — two `Set-Cookie` headers and a custom header
//! * `/binary` — `image/png` body of the bytes 0..=255
//! * `/oops` — a 500 answered by the function
//! * `/fail` — the handler returns an error
//! * `/sleep` — answers `slept` after 1 s (keeps the sandbox busy)
//! * `/chunks` — (streaming) `chunk 0\n` … `chunk 3\n`, 100 ms apart

use base64::Engine as _;
use bytes::Bytes;
use lambda_http::http::{header, StatusCode};
use lambda_http::{service_fn, Body, Error, Request, RequestExt, Response};
use serde_json::json;

fn answer(req: &Request) -> Result<Response<Body>, Error> {
    let path = req.uri().path().to_owned();
    let b = Response::builder();
    if let Some(n) = path.strip_prefix("/status/") {
        let n: u16 = n.parse()?;
        return Ok(b
            .status(StatusCode::from_u16(n)?)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from(format!("status {n}")))?);
    }
    Ok(match path.as_str() {
        "/echo" => {
            let body = req.body().as_ref();
            let headers: serde_json::Map<String, serde_json::Value> = req
                .headers()
                .keys()
                .map(|k| {
                    let all: Vec<&str> = req
                        .headers()
                        .get_all(k)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .collect();
                    (k.to_string(), all.join(",").into())
                })
                .collect();
            let v = json!({
                "method": req.method().as_str(),
                "path": path,
                "q": req.query_string_parameters().all("q"),
                "headers": headers,
                "bodyBase64": base64::engine::general_purpose::STANDARD.encode(body),
                "bodyLen": body.len(),
            });
            b.header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(v.to_string()))?
        }
        "/cookies" => b
            .status(StatusCode::CREATED)
            .header(header::SET_COOKIE, "a=1; Path=/")
            .header(header::SET_COOKIE, "b=2")
            .header("x-fixture", "cookies")
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("two cookies"))?,
        "/binary" => b
            .header(header::CONTENT_TYPE, "image/png")
            .body(Body::from((0..=255u8).collect::<Vec<u8>>()))?,
        "/oops" => b
            .status(StatusCode::INTERNAL_SERVER_ERROR)
            .header(header::CONTENT_TYPE, "text/plain")
            .body(Body::from("oops from the function"))?,
        "/fail" => return Err("the handler failed".into()),
        _ => b
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("no route"))?,
    })
}

async fn buffered(req: Request) -> Result<Response<Body>, Error> {
    if req.uri().path() == "/sleep" {
        println!("sleeping");
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        return Ok(Response::new(Body::from("slept")));
    }
    answer(&req)
}

async fn streaming(
    req: Request,
) -> Result<Response<http_body_util::channel::Channel<Bytes, Error>>, Error> {
    let (mut tx, body) = http_body_util::channel::Channel::<Bytes, Error>::new(4);
    if req.uri().path() == "/chunks" {
        tokio::spawn(async move {
            for i in 0..4 {
                if tx
                    .send_data(Bytes::from(format!("chunk {i}\n")))
                    .await
                    .is_err()
                {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        });
        return Ok(Response::builder()
            .header(header::CONTENT_TYPE, "text/plain")
            .header("x-streamed", "yes")
            .body(body)?);
    }
    let whole = answer(&req)?;
    let (parts, b) = whole.into_parts();
    let bytes = Bytes::copy_from_slice(b.as_ref());
    tokio::spawn(async move {
        let _ = tx.send_data(bytes).await;
    });
    Ok(Response::from_parts(parts, body))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    if std::env::var("FX_HTTP").as_deref() == Ok("stream") {
        lambda_http::run_with_streaming_response(service_fn(streaming)).await
    } else {
        lambda_http::run(service_fn(buffered)).await
    }
}

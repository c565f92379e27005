//! Forwarding one request to the upstream: method, path, query, headers
//! (minus hop-by-hop ones) and body streamed both ways; `Connection:
//! upgrade` requests relayed byte for byte after the upstream's 101.

use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri};
use hyper_util::rt::TokioIo;

use super::Inner;
use crate::process::backend::{read_body, text, Call, CallResult, MAX_BUFFERED_BODY};
use crate::sandbox::{Body, InvokeError};

/// Headers that belong to one connection, never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn is_upgrade(h: &HeaderMap) -> bool {
    h.get(header::CONNECTION)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
        })
        && h.contains_key(header::UPGRADE)
}

/// Drop hop-by-hop headers (those named in `Connection` too), unless the
/// request is an upgrade, whose `Connection`/`Upgrade` must reach the upstream.
fn strip_hop_by_hop(h: &mut HeaderMap, keep_upgrade: bool) {
    // Most messages carry none: one pass over the names instead of a lookup
    // per hop-by-hop name.
    if !h.keys().any(|k| HOP_BY_HOP.contains(k)) {
        return;
    }
    let named: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|t| t.trim().to_ascii_lowercase()))
        .filter(|t| !t.is_empty() && t != "upgrade")
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named {
        h.remove(n);
    }
    for n in HOP_BY_HOP {
        if keep_upgrade && (n == header::CONNECTION || n == header::UPGRADE) {
            continue;
        }
        h.remove(n);
    }
}

impl Inner {
    pub(super) async fn proxy(&self, mut req: Request<Body>, call: Call) -> CallResult {
        let upgrade = is_upgrade(req.headers());
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        strip_hop_by_hop(&mut parts.headers, upgrade);
        if let Ok(v) = HeaderValue::from_str(&call.id) {
            parts.headers.insert("x-call-id", v);
        }
        let pool = &self.pool;
        let pq = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/"));
        parts.uri = if pool.base_path.is_empty() {
            Uri::from(pq)
        } else {
            match format!("{}{pq}", pool.base_path).parse::<Uri>() {
                Ok(u) => u,
                Err(e) => {
                    return Ok(text(
                        StatusCode::BAD_REQUEST,
                        format!("cannot forward the path {pq:?}: {e}"),
                    ))
                }
            }
        };
        parts.version = http::Version::HTTP_11;
        if !parts.headers.contains_key(header::HOST) {
            if let Ok(v) = HeaderValue::from_str(&pool.authority) {
                parts.headers.insert(header::HOST, v);
            }
        }
        let body = if self.buffer_request_body {
            let collected = tokio::select! {
                r = read_body(body, MAX_BUFFERED_BODY) => r,
                _ = call.expired() => return Err(call.timed_out()),
            };
            let b = collected?;
            parts.headers.remove(header::TRANSFER_ENCODING);
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(b.len()));
            Body::from(b)
        } else {
            body
        };
        let forwarded = Request::from_parts(parts, body);
        let unreachable = |e: &dyn std::fmt::Display| {
            InvokeError::Down(format!(
                "cannot reach the upstream at {}: {e}",
                pool.authority
            ))
        };
        let exchange = async {
            let mut sender = pool.checkout().await.map_err(|e| unreachable(&e))?;
            let failed = |e: &hyper::Error| {
                // The client's body stalled on its way to the function: the
                // client's fault (408), not the upstream's (502).
                if crate::sandbox::body_timed_out(e) {
                    InvokeError::RequestTimeout(format!("the request body did not arrive: {e}"))
                } else {
                    InvokeError::Down(format!("the upstream at {} failed: {e}", pool.authority))
                }
            };
            let resp = match sender.try_send_request(forwarded).await {
                Ok(r) => r,
                // A pooled connection the upstream closed before the request
                // went out: the request comes back and goes on a fresh one.
                Err(mut e) => match e.take_message() {
                    Some(again) => {
                        tracing::debug!(error = %e.error(), "pooled connection unusable; reconnecting");
                        sender = pool.connect().await.map_err(|e| unreachable(&e))?;
                        sender.send_request(again).await.map_err(|e| failed(&e))?
                    }
                    None => return Err(failed(e.error())),
                },
            };
            Ok::<_, InvokeError>((sender, resp))
        };
        let (sender, mut resp) = tokio::select! {
            r = exchange => r.inspect_err(|e| match e {
                InvokeError::RequestTimeout(why) => tracing::info!("{why}"),
                other => tracing::warn!("{other}"),
            })?,
            _ = call.expired() => return Err(call.timed_out()),
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client) = client_upgrade {
                let upstream = hyper::upgrade::on(&mut resp);
                tokio::spawn(relay_upgraded(client, upstream));
            }
            let (parts, _) = resp.into_parts();
            return Ok(Response::from_parts(parts, Body::empty()));
        }
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers, false);
        Ok(Response::from_parts(
            parts,
            Body::new(pool.returning(body, sender)),
        ))
    }
}

/// After a 101: copy bytes both ways between the client and the upstream.
async fn relay_upgraded(client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::warn!(error = %e, "upgrade failed");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => tracing::debug!(up, down, "upgraded connection closed"),
        Err(e) => tracing::debug!(error = %e, "upgraded connection ended with an error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_stay_behind() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        h.insert("x-kept", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn upgrades_keep_their_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert!(h.contains_key(header::CONNECTION) && h.contains_key(header::UPGRADE));
    }
}

//! static mode: files from one directory, served by `hyper-staticfile`
//! (path traversal refused, `index.html` for directories, ETag /
//! Last-Modified / conditional requests, byte ranges).

use std::path::PathBuf;

use http::{Method, Request, StatusCode};

use super::backend::{text, Backend, Call, CallResult};
use crate::sandbox::{Body, BoxFuture, InvokeError};

/// Serves a directory.
pub struct StaticFiles {
    root: PathBuf,
    files: hyper_staticfile::Static,
    /// Symlinks out of `root` are served too (`--static-follow-symlinks`).
    follow_symlinks: bool,
}

impl StaticFiles {
    /// Serve `root`.
    pub fn new(root: PathBuf, follow_symlinks: bool) -> StaticFiles {
        let mut files = hyper_staticfile::Static::new(&root);
        files.cache_headers(None);
        StaticFiles {
            root,
            files,
            follow_symlinks,
        }
    }

    /// Whether the file `path` names resolves outside the directory (through
    /// a symlink, of the file or of a directory on its way; a directory's
    /// `index.html` too). A path that does not exist is not outside: it is
    /// answered 404 as any missing file.
    async fn outside(&self, path: &str) -> bool {
        let Ok(root) = tokio::fs::canonicalize(&self.root).await else {
            return true;
        };
        let rel = percent_decode(path);
        let target = root.join(rel.trim_start_matches('/'));
        let Ok(resolved) = tokio::fs::canonicalize(&target).await else {
            return false;
        };
        if !resolved.starts_with(&root) {
            return true;
        }
        if resolved.is_dir() {
            if let Ok(index) = tokio::fs::canonicalize(resolved.join("index.html")).await {
                return !index.starts_with(&root);
            }
        }
        false
    }
}

/// A path that tries to leave the root, however it is spelled.
fn escapes_root(path: &str) -> bool {
    let decoded = percent_decode(path);
    decoded
        .split(['/', '\\'])
        .any(|seg| seg == ".." || seg.contains('\0'))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `If-None-Match` against the response's ETag (weak comparison, `*` matches
/// any); hyper-staticfile only answers `If-Modified-Since` itself.
fn etag_matches<B>(r: &http::Response<B>, if_none_match: Option<&http::HeaderValue>) -> bool {
    let (Some(etag), Some(inm)) = (
        r.headers()
            .get(http::header::ETAG)
            .and_then(|v| v.to_str().ok()),
        if_none_match.and_then(|v| v.to_str().ok()),
    ) else {
        return false;
    };
    let opaque = |t: &str| t.trim().trim_start_matches("W/").to_owned();
    inm.split(',')
        .any(|t| t.trim() == "*" || opaque(t) == opaque(etag))
}

impl Backend for StaticFiles {
    fn start(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            match std::fs::read_dir(&self.root) {
                Ok(_) => Ok(()),
                Err(e) => Err(format!("{}: {e}", self.root.display())),
            }
        })
    }

    fn call(&self, req: Request<Body>, _call: Call) -> BoxFuture<'_, CallResult> {
        Box::pin(async move {
            if req.method() != Method::GET && req.method() != Method::HEAD {
                let mut r = text(
                    StatusCode::METHOD_NOT_ALLOWED,
                    format!("static mode serves GET and HEAD, not {}", req.method()),
                );
                r.headers_mut().insert(
                    http::header::ALLOW,
                    http::HeaderValue::from_static("GET, HEAD"),
                );
                return Ok(r);
            }
            if escapes_root(req.uri().path())
                || (!self.follow_symlinks && self.outside(req.uri().path()).await)
            {
                return Ok(text(
                    StatusCode::NOT_FOUND,
                    format!("{}: not found", req.uri().path()),
                ));
            }
            let (parts, _) = req.into_parts();
            let if_none_match = parts.headers.get(http::header::IF_NONE_MATCH).cloned();
            let req = Request::from_parts(parts, ());
            match self.files.clone().serve(req).await {
                Ok(r)
                    if r.status() == StatusCode::OK && etag_matches(&r, if_none_match.as_ref()) =>
                {
                    let mut not_modified = http::Response::new(Body::empty());
                    *not_modified.status_mut() = StatusCode::NOT_MODIFIED;
                    for h in [http::header::ETAG, http::header::LAST_MODIFIED] {
                        if let Some(v) = r.headers().get(&h) {
                            not_modified.headers_mut().insert(h, v.clone());
                        }
                    }
                    Ok(not_modified)
                }
                Ok(r) => Ok(r.map(Body::new)),
                Err(e) => Err(InvokeError::function(
                    fatalerror::ErrorType::SandboxFailure,
                    format!("cannot read the file: {e}"),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_spellings() {
        assert!(escapes_root("/../etc/passwd"));
        assert!(escapes_root("/a/%2e%2e/%2e%2e/etc/passwd"));
        assert!(escapes_root("/a/..%2f..%2fetc"));
        assert!(escapes_root("/a/..%5c..%5cetc"));
        assert!(escapes_root("/a%00b"));
        assert!(!escapes_root("/index.html"));
        assert!(!escapes_root("/a/b..c/d"));
    }
}

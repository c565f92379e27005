//! The CGI-style environment of a forked function: `Http_Method`,
//! `Http_Path`, `Http_Query`, `Http_ContentLength`, `Http_Host`, and every
//! header as `Http_<Name_With_Underscores>`.

use http::{header, Request};

/// The request's CGI-style environment for the fork modes: `Http_Method`,
/// `Http_Path`, `Http_Query`, `Http_ContentLength`, `Http_Host`, and every
/// header as `Http_<Name_With_Underscores>`.
pub fn cgi_environment<B>(req: &Request<B>) -> Vec<(String, String)> {
    let mut env = vec![
        ("Http_Method".to_owned(), req.method().to_string()),
        ("Http_Path".to_owned(), req.uri().path().to_owned()),
    ];
    if let Some(q) = req.uri().query() {
        env.push(("Http_Query".to_owned(), q.to_owned()));
    }
    if let Some(len) = req.headers().get(header::CONTENT_LENGTH) {
        if let Ok(v) = len.to_str() {
            env.push(("Http_ContentLength".to_owned(), v.to_owned()));
        }
    }
    if let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
    {
        env.push(("Http_Host".to_owned(), host.to_owned()));
    }
    for (name, value) in req.headers() {
        let Ok(v) = value.to_str() else { continue };
        let key: String = name
            .as_str()
            .split('-')
            .map(|part| {
                let mut c = part.chars();
                match c.next() {
                    Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                    None => String::new(),
                }
            })
            .collect::<Vec<_>>()
            .join("_");
        env.push((format!("Http_{key}"), v.to_owned()));
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgi_names() {
        let req = Request::post("/fn/x?a=1&b=2")
            .header("content-type", "text/plain")
            .header("x-call-id", "abc")
            .header("content-length", "3")
            .header("host", "h:8080")
            .body(())
            .unwrap();
        let env = cgi_environment(&req);
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("Http_Method"), Some("POST"));
        assert_eq!(get("Http_Path"), Some("/fn/x"));
        assert_eq!(get("Http_Query"), Some("a=1&b=2"));
        assert_eq!(get("Http_Content_Type"), Some("text/plain"));
        assert_eq!(get("Http_X_Call_Id"), Some("abc"));
        assert_eq!(get("Http_ContentLength"), Some("3"));
        assert_eq!(get("Http_Host"), Some("h:8080"));
    }
}

//! Parsing helpers every layer may use: durations, names, programs, URLs.
//! The command line uses them as value parsers; the OpenFaaS front reads
//! `X-Timeout` with [`duration`].

use std::path::{Path, PathBuf};
use std::time::Duration;

/// `"300"` (seconds) or a humantime duration such as `"1500ms"`; zero is refused.
pub fn duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let d = if let Ok(secs) = t.parse::<u64>() {
        Duration::from_secs(secs)
    } else if let Ok(secs) = t.parse::<f64>() {
        if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
            return Err(format!("'{s}' is not a valid duration"));
        }
        Duration::from_secs_f64(secs)
    } else {
        humantime::parse_duration(t).map_err(|e| {
            format!("'{s}' is not a valid duration ({e}); use seconds like 300 or a duration like 1500ms")
        })?
    };
    if d.is_zero() {
        return Err(format!("'{s}' is zero; the duration must be positive"));
    }
    Ok(d)
}

/// Like [`duration`], and `"0"` means "none" (zero).
pub fn duration_or_zero(s: &str) -> Result<Duration, String> {
    if s.trim() == "0" || s.trim() == "0s" {
        return Ok(Duration::ZERO);
    }
    duration(s)
}

/// A non-empty name without control characters.
pub fn name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.chars().any(|c| c.is_control()) {
        return Err(format!("{s:?} contains control characters"));
    }
    Ok(s.to_owned())
}

/// An `http://` URL (the scheme may be left out), with a host.
pub fn http_url(s: &str) -> Result<http::Uri, String> {
    let with_scheme = if s.contains("://") {
        s.to_owned()
    } else {
        format!("http://{s}")
    };
    let uri: http::Uri = with_scheme
        .parse()
        .map_err(|e| format!("'{s}' is not a URL ({e})"))?;
    if uri.scheme_str() != Some("http") {
        return Err(format!("'{s}': only http:// upstreams are supported"));
    }
    if uri.authority().is_none() {
        return Err(format!("'{s}' has no host"));
    }
    Ok(uri)
}

/// An absolute URL path.
pub fn url_path(s: &str) -> Result<String, String> {
    if !s.starts_with('/') || s.chars().any(|c| c.is_control() || c == ' ') {
        return Err(format!("'{s}' is not an absolute URL path"));
    }
    Ok(s.to_owned())
}

/// Whether `p` is an executable file.
pub fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolve a program name the way a shell would: a path with a slash as given,
/// else the first executable match on `PATH`.
pub fn program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return is_executable(&p).then_some(p);
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| is_executable(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(duration("300"), Ok(Duration::from_secs(300)));
        assert_eq!(duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(duration("abc").unwrap_err().contains("'abc'"));
        assert!(duration("0").is_err());
        assert!(duration("-1").is_err());
        assert_eq!(duration_or_zero("0"), Ok(Duration::ZERO));
        assert_eq!(duration_or_zero("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn urls_and_paths() {
        assert_eq!(
            http_url("127.0.0.1:3000").unwrap().to_string(),
            "http://127.0.0.1:3000/"
        );
        assert!(http_url("https://x:1")
            .unwrap_err()
            .contains("only http://"));
        assert!(url_path("/ok").is_ok());
        assert!(url_path("no-slash").is_err());
        assert!(name("").is_err());
        assert!(name("a\u{1}").is_err());
    }

    #[test]
    fn programs() {
        assert!(program("sh").is_some());
        assert!(program("/nonexistent/x").is_none());
    }
}

//! Function names as the Invoke API accepts them (AWS's `NamespacedFunctionName`
//! pattern), and why a name names no function here.

use fatalerror::ErrorType;

/// AWS's pattern for `FunctionName` on Invoke, quoted in its `ValidationException`.
pub const FUNCTION_NAME_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_\.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?";
/// AWS's pattern for the `Qualifier` parameter.
pub const QUALIFIER_PATTERN: &str = r"\$(LATEST(\.PUBLISHED)?)|[a-zA-Z0-9-_$]+";

/// The longest `FunctionName` AWS takes.
const MAX_FUNCTION_NAME: usize = 256;
/// The longest `Qualifier` AWS takes.
const MAX_QUALIFIER: usize = 128;

/// Why a name names no function here (each rendered as AWS answers it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name or qualifier does not match AWS's pattern (400 `ValidationException`).
    #[error("1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: Member must satisfy regular expression pattern: {pattern}")]
    Invalid {
        /// `functionName` or `qualifier`.
        field: &'static str,
        /// The value given.
        value: String,
        /// The pattern it fails.
        pattern: &'static str,
    },
    /// The path's qualifier and `?Qualifier=` differ (400 `InvalidParameterValueException`).
    #[error(
        "The derived qualifier from the function name does not match the specified qualifier."
    )]
    QualifierMismatch,
    /// An ARN of another region (404 `ResourceNotFoundException`).
    #[error("Functions from '{theirs}' are not reachable in this region ('{ours}')")]
    WrongRegion {
        /// The ARN's region.
        theirs: String,
        /// rapid's.
        ours: String,
    },
    /// No such function, version or alias (404 `ResourceNotFoundException`).
    #[error("Function not found: {arn}")]
    NotFound {
        /// The ARN asked for (`:$LATEST` when unqualified, as AWS writes it).
        arn: String,
    },
}

impl ResolveError {
    /// The error's kind.
    pub fn error_type(&self) -> ErrorType {
        match self {
            ResolveError::Invalid { .. } => ErrorType::ValidationException,
            ResolveError::QualifierMismatch => ErrorType::InvalidParameterValueException,
            ResolveError::WrongRegion { .. } | ResolveError::NotFound { .. } => {
                ErrorType::ResourceNotFoundException
            }
        }
    }
}

/// A function name taken apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed<'a> {
    /// The ARN's region, if given.
    pub region: Option<&'a str>,
    /// The account, if given.
    pub account: Option<&'a str>,
    /// The function's name.
    pub name: &'a str,
    /// The qualifier, if given.
    pub qualifier: Option<&'a str>,
}

/// `name` against [`FUNCTION_NAME_PATTERN`] (the whole string); `None` when it fails.
/// Optional parts are taken when they can be, as a regex engine would.
pub fn parse(name: &str) -> Option<Parsed<'_>> {
    if name.is_empty() || name.len() > MAX_FUNCTION_NAME {
        return None;
    }
    if !name.contains(':') {
        // A bare name (the usual case, and every invoke of `function`): the
        // only form one segment can match.
        return is_name(name).then_some(Parsed {
            region: None,
            account: None,
            name,
            qualifier: None,
        });
    }
    let segments: Vec<&str> = name.split(':').collect();
    let rest: &[&str] = match segments.as_slice() {
        ["arn", partition, "lambda", rest @ ..] if is_partition(partition) => rest,
        all => all,
    };
    // Region, account, `function` prefix: each present or not, the longest first.
    for mask in (0u8..8).rev() {
        let (want_region, want_account, want_prefix) =
            (mask & 4 != 0, mask & 2 != 0, mask & 1 != 0);
        let mut s = rest;
        let mut take = |want: bool, ok: &dyn Fn(&str) -> bool| -> Option<Option<&str>> {
            if !want {
                return Some(None);
            }
            let (first, tail) = s.split_first()?;
            if !ok(first) {
                return None;
            }
            s = tail;
            Some(Some(*first))
        };
        let Some(region) = take(want_region, &is_region) else {
            continue;
        };
        let Some(account) = take(want_account, &|a| {
            a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit())
        }) else {
            continue;
        };
        if take(want_prefix, &|p| p == "function").is_none() {
            continue;
        }
        let (name, qualifier) = match s {
            [n] => (*n, None),
            [n, q] => (*n, Some(*q)),
            _ => continue,
        };
        if !is_name(name) || matches!(qualifier, Some(q) if !is_path_qualifier(q)) {
            continue;
        }
        return Some(Parsed {
            region,
            account,
            name,
            qualifier,
        });
    }
    None
}

/// A `Qualifier` parameter against [`QUALIFIER_PATTERN`].
pub fn valid_qualifier(q: &str) -> bool {
    !q.is_empty()
        && q.len() <= MAX_QUALIFIER
        && (q == "$LATEST"
            || q == "$LATEST.PUBLISHED"
            || q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_$".contains(&b)))
}

/// `aws[a-zA-Z-]*` or nothing.
fn is_partition(p: &str) -> bool {
    p.is_empty()
        || p.strip_prefix("aws")
            .is_some_and(|r| r.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'))
}

/// `(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}`.
fn is_region(r: &str) -> bool {
    let r = r.strip_prefix("eusc-").unwrap_or(r);
    if r.len() < 2 || !r.as_bytes()[..2].iter().all(u8::is_ascii_lowercase) {
        return false;
    }
    let lower = |s: &str| s.bytes().all(|c| c.is_ascii_lowercase());
    let parts: Vec<&str> = r[2..].split('-').collect();
    let tail = match parts.as_slice() {
        ["", rest @ ..] => rest,
        _ => return false,
    };
    let tail = match tail {
        [p, rest @ ..] if rest.len() == 2 => {
            let iso = p
                .strip_prefix("iso")
                .is_some_and(|x| x.len() <= 1 && lower(x));
            if *p != "gov" && !iso {
                return false;
            }
            rest
        }
        t => t,
    };
    matches!(tail, [word, digit]
        if !word.is_empty() && lower(word)
            && digit.len() == 1 && digit.bytes().all(|c| c.is_ascii_digit()))
}

/// `[a-zA-Z0-9-_\.]+`.
fn is_name(n: &str) -> bool {
    !n.is_empty()
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

/// `\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+`.
fn is_path_qualifier(q: &str) -> bool {
    q == "$LATEST"
        || q == "$LATEST.PUBLISHED"
        || (!q.is_empty()
            && q.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parts<'a> = (Option<&'a str>, Option<&'a str>, &'a str, Option<&'a str>);

    fn p(s: &str) -> Option<Parts<'_>> {
        parse(s).map(|p| (p.region, p.account, p.name, p.qualifier))
    }

    #[test]
    fn forms_aws_accepts() {
        assert_eq!(p("my-fn"), Some((None, None, "my-fn", None)));
        assert_eq!(
            p("my-fn:$LATEST"),
            Some((None, None, "my-fn", Some("$LATEST")))
        );
        assert_eq!(p("my-fn:1"), Some((None, None, "my-fn", Some("1"))));
        assert_eq!(p("function:my-fn"), Some((None, None, "my-fn", None)));
        assert_eq!(
            p("123456789012:function:my-fn:live"),
            Some((None, Some("123456789012"), "my-fn", Some("live")))
        );
        assert_eq!(
            p("arn:aws:lambda:us-east-1:123456789012:function:my-fn"),
            Some((Some("us-east-1"), Some("123456789012"), "my-fn", None))
        );
        assert_eq!(
            p("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f.n:$LATEST"),
            Some((
                Some("us-gov-west-1"),
                Some("123456789012"),
                "f.n",
                Some("$LATEST")
            ))
        );
        // An incomplete ARN names a function called `function`, as on AWS.
        assert_eq!(
            p("arn:aws:lambda:us-east-1:123456789012:function"),
            Some((Some("us-east-1"), Some("123456789012"), "function", None))
        );
    }

    #[test]
    fn forms_aws_rejects() {
        for bad in [
            "",
            "*",
            "my-function!",
            "invalid-account:function:my-function",
            "arn:aws:lambda:invalid-region:123456789012:function:f",
            "arn:aws:ec2:us-east-1:123456789012:function:f",
            "arn:aws:lambda:us-east-1:123456789012:function:f:1:2",
            "function:my-function:$LATEST:extra",
            "arn:aws:lambda::123456789012:function:my-function",
            "arn:aws:lambda:us-east-1::function:my-function",
            "my-function:$LATES",
        ] {
            assert_eq!(parse(bad), None, "{bad}");
        }
        assert!(parse(&"a".repeat(257)).is_none());
        assert!(parse(&"a".repeat(65)).is_some(), "AWS answers 404, not 400");
    }

    #[test]
    fn qualifiers() {
        assert!(valid_qualifier("$LATEST"));
        assert!(valid_qualifier("7"));
        assert!(!valid_qualifier("invalid!"));
        assert!(!valid_qualifier(""));
        assert!(!valid_qualifier(&"a".repeat(129)));
    }

    #[test]
    fn messages() {
        let e = ResolveError::Invalid {
            field: "functionName",
            value: "a!".into(),
            pattern: FUNCTION_NAME_PATTERN,
        };
        assert!(e
            .to_string()
            .starts_with("1 validation error detected: Value 'a!' at 'functionName' failed"));
        assert_eq!(e.error_type(), ErrorType::ValidationException);
    }
}

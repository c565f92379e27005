//! Lambda's advanced logging controls (`LoggingConfig`): the function's log
//! format, its application log level and its system log level, and the
//! filters Lambda applies with them (docs/api.md, "Advanced logging controls").
//!
//! * The format and application level reach the runtime (and extensions) as
//!   `AWS_LAMBDA_LOG_FORMAT` / `AWS_LAMBDA_LOG_LEVEL`.
//! * With `JSON`, rapid's platform lines are JSON records filtered by the
//!   system level ([`platform_level`]), and the function's output lines are
//!   filtered by their `"level"` ([`line_level`]).

/// `LogFormat`, spelled as AWS spells it in the API and the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Plain text (Lambda's default): rapid's output as it always was.
    #[default]
    Text,
    /// Structured JSON.
    Json,
}

impl Format {
    /// The value of `AWS_LAMBDA_LOG_FORMAT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "Text",
            Format::Json => "JSON",
        }
    }
}

/// `ApplicationLogLevel`, from the most detail to the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AppLevel {
    /// `TRACE`.
    Trace,
    /// `DEBUG`.
    Debug,
    /// `INFO`.
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
    /// `FATAL`.
    Fatal,
}

impl AppLevel {
    /// The value of `AWS_LAMBDA_LOG_LEVEL`.
    pub fn as_str(self) -> &'static str {
        match self {
            AppLevel::Trace => "TRACE",
            AppLevel::Debug => "DEBUG",
            AppLevel::Info => "INFO",
            AppLevel::Warn => "WARN",
            AppLevel::Error => "ERROR",
            AppLevel::Fatal => "FATAL",
        }
    }

    /// A line's `"level"` value: the six names in any case, and the Python
    /// spellings `WARNING` and `CRITICAL` that the managed runtimes print.
    fn parse(s: &str) -> Option<AppLevel> {
        Some(match s.to_ascii_uppercase().as_str() {
            "TRACE" => AppLevel::Trace,
            "DEBUG" => AppLevel::Debug,
            "INFO" => AppLevel::Info,
            "WARN" | "WARNING" => AppLevel::Warn,
            "ERROR" => AppLevel::Error,
            "FATAL" | "CRITICAL" => AppLevel::Fatal,
            _ => return None,
        })
    }
}

/// `SystemLogLevel`, from the most detail to the least.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SystemLevel {
    /// `DEBUG`.
    Debug,
    /// `INFO` (Lambda's default).
    Info,
    /// `WARN`.
    Warn,
}

/// The function's logging configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LogControls {
    /// `--function-log-format`; `None`: not configured (nothing is set for
    /// the runtime, output as text).
    pub format: Option<Format>,
    /// `--function-log-level` (JSON only).
    pub level: Option<AppLevel>,
    /// `--function-system-log-level` (JSON only).
    pub system_level: Option<SystemLevel>,
}

/// A configuration AWS refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LogControlsError {
    /// A log level without the JSON format (AWS's `InvalidParameterValueException`).
    #[error("--{0}: LogLevel is not supported when LogFormat is set to \"Text\". Remove LogLevel from your request or change the LogFormat to \"JSON\" and try again. (give --function-log-format JSON)")]
    LevelWithText(&'static str),
}

impl LogControls {
    /// Check what AWS checks: levels need the JSON format.
    pub fn validate(self) -> Result<LogControls, LogControlsError> {
        if self.format != Some(Format::Json) {
            if self.level.is_some() {
                return Err(LogControlsError::LevelWithText("function-log-level"));
            }
            if self.system_level.is_some() {
                return Err(LogControlsError::LevelWithText("function-system-log-level"));
            }
        }
        Ok(self)
    }

    /// Whether platform and function lines are JSON.
    pub fn json(self) -> bool {
        self.format == Some(Format::Json)
    }

    /// The variables the runtime and the extensions get.
    pub fn env(self) -> Vec<(&'static str, &'static str)> {
        let mut v = Vec::new();
        if let Some(f) = self.format {
            v.push(("AWS_LAMBDA_LOG_FORMAT", f.as_str()));
        }
        if let Some(l) = self.level {
            v.push(("AWS_LAMBDA_LOG_LEVEL", l.as_str()));
        }
        v
    }

    /// Whether a platform record of this type and status is written.
    pub fn keeps_platform(self, record_type: &str, status: Option<&str>) -> bool {
        platform_level(record_type, status) >= self.system_level.unwrap_or(SystemLevel::Info)
    }

    /// Whether a function output line at `level` is written.
    pub fn keeps_line(self, level: AppLevel) -> bool {
        level >= self.level.unwrap_or(AppLevel::Info)
    }
}

/// The system level of a platform record (rapid's mapping, docs/api.md):
/// the lines Lambda writes by default (`initStart`, `start`, `report`,
/// `extension`, `restoreStart`) are INFO; the phase-done records and a
/// successful init/restore report (folded into REPORT's init duration in text)
/// are DEBUG; a report of a failed phase or invoke is WARN, so that failures
/// still show at the least detailed level.
pub fn platform_level(record_type: &str, status: Option<&str>) -> SystemLevel {
    let failed = status.is_some_and(|s| s != "success");
    match record_type {
        "platform.report" | "platform.initReport" | "platform.restoreReport" if failed => {
            SystemLevel::Warn
        }
        "platform.logsDropped" => SystemLevel::Warn,
        "platform.initRuntimeDone"
        | "platform.runtimeDone"
        | "platform.restoreRuntimeDone"
        | "platform.initReport"
        | "platform.restoreReport" => SystemLevel::Debug,
        _ => SystemLevel::Info,
    }
}

/// A function output line's level, as Lambda reads it: the `"level"` of a
/// JSON object line; INFO for any other line, a missing or unknown level.
pub fn line_level(line: &[u8]) -> AppLevel {
    let trimmed = line.trim_ascii();
    if trimmed.first() != Some(&b'{') {
        return AppLevel::Info;
    }
    #[derive(serde::Deserialize)]
    struct Levelled<'a> {
        #[serde(borrow)]
        level: Option<std::borrow::Cow<'a, str>>,
    }
    match serde_json::from_slice::<Levelled>(trimmed) {
        Ok(Levelled { level: Some(l) }) => AppLevel::parse(&l).unwrap_or(AppLevel::Info),
        _ => AppLevel::Info,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_of_lines() {
        assert_eq!(
            line_level(br#"{"level":"debug","msg":"x"}"#),
            AppLevel::Debug
        );
        assert_eq!(
            line_level(br#" {"message":"m","level":"WARNING"}"#),
            AppLevel::Warn
        );
        assert_eq!(line_level(br#"{"level":"CRITICAL"}"#), AppLevel::Fatal);
        assert_eq!(line_level(br#"{"level":"trace"}"#), AppLevel::Trace);
        assert_eq!(line_level(br#"{"level":"loud"}"#), AppLevel::Info);
        assert_eq!(line_level(br#"{"level":3}"#), AppLevel::Info);
        assert_eq!(line_level(br#"{"msg":"no level"}"#), AppLevel::Info);
        assert_eq!(line_level(b"plain text ERROR"), AppLevel::Info);
        assert_eq!(line_level(br#"{"level":"error""#), AppLevel::Info);
        assert_eq!(line_level(b""), AppLevel::Info);
    }

    #[test]
    fn levels_need_json() {
        let text_level = LogControls {
            level: Some(AppLevel::Debug),
            ..LogControls::default()
        };
        assert_eq!(
            text_level.validate(),
            Err(LogControlsError::LevelWithText("function-log-level"))
        );
        let explicit_text = LogControls {
            format: Some(Format::Text),
            system_level: Some(SystemLevel::Warn),
            ..LogControls::default()
        };
        assert!(explicit_text.validate().is_err());
        let json = LogControls {
            format: Some(Format::Json),
            level: Some(AppLevel::Warn),
            system_level: Some(SystemLevel::Debug),
        };
        assert_eq!(json.validate(), Ok(json));
        assert_eq!(
            json.env(),
            vec![
                ("AWS_LAMBDA_LOG_FORMAT", "JSON"),
                ("AWS_LAMBDA_LOG_LEVEL", "WARN")
            ]
        );
        assert!(LogControls::default().env().is_empty());
    }

    #[test]
    fn filters() {
        let info = LogControls {
            format: Some(Format::Json),
            ..LogControls::default()
        };
        assert!(info.keeps_platform("platform.start", None));
        assert!(info.keeps_platform("platform.report", Some("success")));
        assert!(!info.keeps_platform("platform.runtimeDone", Some("success")));
        assert!(!info.keeps_platform("platform.initReport", Some("success")));
        assert!(info.keeps_platform("platform.initReport", Some("error")));
        let warn = LogControls {
            system_level: Some(SystemLevel::Warn),
            ..info
        };
        assert!(!warn.keeps_platform("platform.start", None));
        assert!(!warn.keeps_platform("platform.report", Some("success")));
        assert!(warn.keeps_platform("platform.report", Some("timeout")));
        let debug = LogControls {
            system_level: Some(SystemLevel::Debug),
            ..info
        };
        assert!(debug.keeps_platform("platform.runtimeDone", Some("success")));
        assert!(info.keeps_line(AppLevel::Info));
        assert!(!info.keeps_line(AppLevel::Debug));
        let error = LogControls {
            level: Some(AppLevel::Error),
            ..info
        };
        assert!(!error.keeps_line(AppLevel::Warn));
        assert!(error.keeps_line(AppLevel::Fatal));
    }
}

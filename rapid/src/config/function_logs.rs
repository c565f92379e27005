//! The command line of the function's logging controls (Lambda's
//! `LoggingConfig`): what the runtime is told in `AWS_LAMBDA_LOG_FORMAT` and
//! `AWS_LAMBDA_LOG_LEVEL`, and how rapid writes and filters the function's
//! log. rapid's own `--log-format` / `--log-level` are its diagnostics.

use crate::log_controls::{AppLevel, Format, LogControls, LogControlsError, SystemLevel};

/// The options.
#[derive(Debug, Clone, clap::Args)]
pub struct FunctionLogArgs {
    /// The function's log format (Lambda's LogFormat): the runtime gets
    /// AWS_LAMBDA_LOG_FORMAT; with JSON, rapid's START/REPORT and other
    /// platform lines are JSON records ({"time","type","record"}) and the
    /// function's lines are filtered by their "level" [default: not set; text].
    #[arg(
        long,
        env = "RAPID_FUNCTION_LOG_FORMAT",
        value_enum,
        ignore_case = true,
        value_name = "Text|JSON"
    )]
    pub function_log_format: Option<FormatArg>,

    /// The function's application log level (JSON only): the runtime gets
    /// AWS_LAMBDA_LOG_LEVEL; function lines less severe are dropped (a line
    /// without a "level" counts as INFO) [default: INFO].
    #[arg(
        long,
        env = "RAPID_FUNCTION_LOG_LEVEL",
        value_enum,
        ignore_case = true,
        value_name = "LEVEL"
    )]
    pub function_log_level: Option<AppLevelArg>,

    /// Which platform records rapid writes (JSON only): DEBUG adds the
    /// runtimeDone and successful init reports, WARN keeps only failures
    /// [default: INFO].
    #[arg(
        long,
        env = "RAPID_FUNCTION_SYSTEM_LOG_LEVEL",
        value_enum,
        ignore_case = true,
        value_name = "LEVEL"
    )]
    pub function_system_log_level: Option<SystemLevelArg>,
}

/// `--function-log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// Plain text.
    #[value(name = "Text")]
    Text,
    /// Structured JSON.
    #[value(name = "JSON")]
    Json,
}

/// `--function-log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AppLevelArg {
    /// Most detail.
    #[value(name = "TRACE")]
    Trace,
    /// Debugging.
    #[value(name = "DEBUG")]
    Debug,
    /// Normal operation (the default).
    #[value(name = "INFO")]
    Info,
    /// Potential problems.
    #[value(name = "WARN")]
    Warn,
    /// Errors.
    #[value(name = "ERROR")]
    Error,
    /// Least detail.
    #[value(name = "FATAL")]
    Fatal,
}

/// `--function-system-log-level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SystemLevelArg {
    /// Every platform record.
    #[value(name = "DEBUG")]
    Debug,
    /// Lambda's default.
    #[value(name = "INFO")]
    Info,
    /// Failures only.
    #[value(name = "WARN")]
    Warn,
}

impl FunctionLogArgs {
    /// The validated controls: a level without `--function-log-format JSON`
    /// is refused, as AWS refuses it.
    pub fn controls(&self) -> Result<LogControls, LogControlsError> {
        LogControls {
            format: self.function_log_format.map(|f| match f {
                FormatArg::Text => Format::Text,
                FormatArg::Json => Format::Json,
            }),
            level: self.function_log_level.map(|l| match l {
                AppLevelArg::Trace => AppLevel::Trace,
                AppLevelArg::Debug => AppLevel::Debug,
                AppLevelArg::Info => AppLevel::Info,
                AppLevelArg::Warn => AppLevel::Warn,
                AppLevelArg::Error => AppLevel::Error,
                AppLevelArg::Fatal => AppLevel::Fatal,
            }),
            system_level: self.function_system_log_level.map(|l| match l {
                SystemLevelArg::Debug => SystemLevel::Debug,
                SystemLevelArg::Info => SystemLevel::Info,
                SystemLevelArg::Warn => SystemLevel::Warn,
            }),
        }
        .validate()
    }
}

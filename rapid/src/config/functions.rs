//! The table of functions: `--function NAME=COMMAND` (repeatable) and
//! `--config FILE` (TOML). Each entry says what a function runs and may
//! override rapid's defaults for it (timeout, memory, concurrency, …).
//!
//! ```toml
//! [functions.hello]
//! command = "./target/debug/hello"     # or ["python3", "-m", "awslambdaric", "app.handler"]
//! handler = "app.handler"              # _HANDLER
//! timeout = "3s"                       # or seconds: 3
//! memory = 512                         # MB
//! concurrency = 4
//! min_warm = 1
//! extensions_dir = "./extensions"
//! environment = { GREETING = "hello" }
//! ```
//!
//! Relative paths in a file (the command's program when it has a `/`, the
//! extensions directory, watched paths) are relative to the file's directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What one function runs and what it sets for itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionSpec {
    /// Its name (`AWS_LAMBDA_FUNCTION_NAME`, the Invoke API path).
    pub name: String,
    /// The bootstrap and its arguments.
    pub command: Vec<String>,
    /// `_HANDLER`.
    pub handler: Option<String>,
    /// Added to the runtime's environment.
    pub environment: Vec<(String, String)>,
    /// The function timeout.
    pub timeout: Option<Duration>,
    /// Memory size, MB.
    pub memory: Option<u64>,
    /// Sandboxes at most.
    pub concurrency: Option<u32>,
    /// Sandboxes kept warm.
    pub min_warm: Option<u32>,
    /// External extensions.
    pub extensions_dir: Option<PathBuf>,
}

/// A function entry that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FunctionsError {
    /// `--function` without `=`.
    #[error("--function {0:?}: expected NAME=COMMAND, e.g. --function hello=./bootstrap")]
    NotNameEqualsCommand(String),
    /// A name AWS would not accept.
    #[error("function name {0:?}: 1 to 64 letters, digits, '-' or '_'")]
    BadName(String),
    /// `function` names the default function in the Invoke API path.
    #[error("function name \"function\" is reserved (the Invoke API path's name of the default function)")]
    Reserved,
    /// Two entries with one name.
    #[error("function {0:?} is defined twice")]
    Duplicate(String),
    /// Nothing to run.
    #[error("function {0:?}: the command is empty")]
    EmptyCommand(String),
    /// A command line that does not split into words (an open quote).
    #[error(
        "function {name:?}: cannot split the command {command:?} into words (unbalanced quotes)"
    )]
    BadCommand {
        /// The function.
        name: String,
        /// Its command.
        command: String,
    },
    /// The file cannot be read.
    #[error("--config {path}: {why}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        why: String,
    },
    /// The file is not the TOML rapid reads.
    #[error("--config {path}: {why}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The parser's message (with the line).
        why: String,
    },
    /// A timeout that is not a duration.
    #[error("function {name:?}: timeout {why}")]
    BadTimeout {
        /// The function.
        name: String,
        /// What is wrong.
        why: String,
    },
    /// A number out of its range.
    #[error("function {name:?}: {field} {value} is out of range ({range})")]
    OutOfRange {
        /// The function.
        name: String,
        /// The setting.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is allowed.
        range: &'static str,
    },
}

/// A command as a line (split like a shell would) or as words.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CommandField {
    Line(String),
    Words(Vec<String>),
}

/// A timeout as seconds or as a duration text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum TimeoutField {
    Seconds(u64),
    Text(String),
}

/// One `[functions.NAME]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    #[serde(alias = "bootstrap")]
    command: CommandField,
    handler: Option<String>,
    #[serde(default)]
    environment: BTreeMap<String, String>,
    timeout: Option<TimeoutField>,
    memory: Option<u64>,
    concurrency: Option<u32>,
    min_warm: Option<u32>,
    extensions_dir: Option<PathBuf>,
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    functions: toml::Table,
}

/// Whether `name` is a function name as AWS accepts it (without ARN parts).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn checked_name(name: &str) -> Result<String, FunctionsError> {
    if name == "function" {
        return Err(FunctionsError::Reserved);
    }
    if !valid_name(name) {
        return Err(FunctionsError::BadName(name.to_owned()));
    }
    Ok(name.to_owned())
}

fn split(name: &str, line: &str) -> Result<Vec<String>, FunctionsError> {
    let words = shlex::split(line).ok_or_else(|| FunctionsError::BadCommand {
        name: name.to_owned(),
        command: line.to_owned(),
    })?;
    if words.is_empty() {
        return Err(FunctionsError::EmptyCommand(name.to_owned()));
    }
    Ok(words)
}

/// `NAME=COMMAND` of `--function`.
pub fn parse_flag(value: &str) -> Result<FunctionSpec, FunctionsError> {
    let (name, command) = value
        .split_once('=')
        .ok_or_else(|| FunctionsError::NotNameEqualsCommand(value.to_owned()))?;
    let name = checked_name(name.trim())?;
    let command = split(&name, command)?;
    Ok(FunctionSpec {
        name,
        command,
        ..FunctionSpec::default()
    })
}

/// `p` relative to `dir` when it is relative.
fn beside(dir: &Path, p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// The functions of the TOML file at `path`, in the file's order.
pub fn load_file(path: &Path) -> Result<Vec<FunctionSpec>, FunctionsError> {
    let text = std::fs::read_to_string(path).map_err(|e| FunctionsError::Unreadable {
        path: path.to_path_buf(),
        why: e.to_string(),
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    parse_file(&text, dir).map_err(|e| match e {
        ParseError::Toml(why) => FunctionsError::Invalid {
            path: path.to_path_buf(),
            why,
        },
        ParseError::Entry(e) => e,
    })
}

enum ParseError {
    Toml(String),
    Entry(FunctionsError),
}

fn parse_file(text: &str, dir: &Path) -> Result<Vec<FunctionSpec>, ParseError> {
    let file: File = toml::from_str(text).map_err(|e| ParseError::Toml(e.to_string()))?;
    let mut out = Vec::new();
    for (name, value) in file.functions {
        let name = checked_name(&name).map_err(ParseError::Entry)?;
        let entry: Entry = value
            .try_into()
            .map_err(|e: toml::de::Error| ParseError::Toml(format!("[functions.{name}]: {e}")))?;
        out.push(spec_of(name, entry, dir).map_err(ParseError::Entry)?);
    }
    Ok(out)
}

fn spec_of(name: String, e: Entry, dir: &Path) -> Result<FunctionSpec, FunctionsError> {
    let mut command = match e.command {
        CommandField::Line(line) => split(&name, &line)?,
        CommandField::Words(words) if words.is_empty() => {
            return Err(FunctionsError::EmptyCommand(name))
        }
        CommandField::Words(words) => words,
    };
    // A program given as a path is found beside the file; a bare name on PATH.
    if command[0].contains('/') {
        command[0] = beside(dir, Path::new(&command[0])).display().to_string();
    }
    let timeout = match e.timeout {
        None => None,
        Some(TimeoutField::Seconds(0)) => {
            return Err(FunctionsError::BadTimeout {
                name,
                why: "0 is not positive".into(),
            })
        }
        Some(TimeoutField::Seconds(s)) => Some(Duration::from_secs(s)),
        Some(TimeoutField::Text(t)) => {
            Some(
                crate::parse::duration(&t).map_err(|why| FunctionsError::BadTimeout {
                    name: name.clone(),
                    why,
                })?,
            )
        }
    };
    let range = |field, value: u64, lo: u64, hi: u64, range| {
        if (lo..=hi).contains(&value) {
            Ok(())
        } else {
            Err(FunctionsError::OutOfRange {
                name: name.clone(),
                field,
                value,
                range,
            })
        }
    };
    if let Some(m) = e.memory {
        range("memory", m, 1, 1_048_576, "1..=1048576 MB")?;
    }
    if let Some(c) = e.concurrency {
        range("concurrency", c.into(), 1, 1024, "1..=1024")?;
    }
    if let Some(k) = e.min_warm {
        range("min_warm", k.into(), 0, 1024, "0..=1024")?;
    }
    Ok(FunctionSpec {
        command,
        handler: e.handler,
        environment: e.environment.into_iter().collect(),
        timeout,
        memory: e.memory,
        concurrency: e.concurrency,
        min_warm: e.min_warm,
        extensions_dir: e.extensions_dir.map(|d| beside(dir, &d)),
        name,
    })
}

/// Refuse a second function of one name.
pub fn check_unique<'a>(names: impl Iterator<Item = &'a str>) -> Result<(), FunctionsError> {
    let mut seen = std::collections::HashSet::new();
    for n in names {
        if !seen.insert(n) {
            return Err(FunctionsError::Duplicate(n.to_owned()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_split_like_a_shell() {
        let s = parse_flag("hello=python3 -m awslambdaric 'app.handler'").unwrap();
        assert_eq!(s.name, "hello");
        assert_eq!(s.command, ["python3", "-m", "awslambdaric", "app.handler"]);
        assert_eq!(
            parse_flag("nothing"),
            Err(FunctionsError::NotNameEqualsCommand("nothing".into()))
        );
        assert_eq!(
            parse_flag("a b=x"),
            Err(FunctionsError::BadName("a b".into()))
        );
        assert_eq!(parse_flag("function=x"), Err(FunctionsError::Reserved));
        assert_eq!(
            parse_flag("f= "),
            Err(FunctionsError::EmptyCommand("f".into()))
        );
        assert!(matches!(
            parse_flag("f=sh -c 'x"),
            Err(FunctionsError::BadCommand { .. })
        ));
    }

    #[test]
    fn a_file_keeps_its_order_and_resolves_paths_beside_it() {
        let text = r#"
            [functions.zeta]
            command = "./bin/zeta --flag"
            timeout = "1500ms"
            memory = 256
            concurrency = 3
            min_warm = 0
            extensions_dir = "ext"
            environment = { A = "1", B = "two" }

            [functions.alpha]
            bootstrap = ["python3", "-m", "awslambdaric", "app.handler"]
            handler = "app.handler"
            timeout = 7
        "#;
        let specs = match parse_file(text, Path::new("/srv/fns")) {
            Ok(s) => s,
            Err(_) => panic!("the file should parse"),
        };
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["zeta", "alpha"], "the file's order");
        let z = &specs[0];
        assert_eq!(z.command, ["/srv/fns/./bin/zeta", "--flag"]);
        assert_eq!(z.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(
            (z.memory, z.concurrency, z.min_warm),
            (Some(256), Some(3), Some(0))
        );
        assert_eq!(z.extensions_dir.as_deref(), Some(Path::new("/srv/fns/ext")));
        assert_eq!(
            z.environment,
            [("A".into(), "1".into()), ("B".into(), "two".into())]
        );
        let a = &specs[1];
        assert_eq!(a.command[0], "python3", "a bare program stays for PATH");
        assert_eq!(a.handler.as_deref(), Some("app.handler"));
        assert_eq!(a.timeout, Some(Duration::from_secs(7)));
    }

    #[test]
    fn bad_files_are_refused_with_what_is_wrong() {
        let err = |text: &str| match parse_file(text, Path::new("/")) {
            Ok(_) => panic!("{text} should be refused"),
            Err(ParseError::Toml(why)) => why,
            Err(ParseError::Entry(e)) => e.to_string(),
        };
        assert!(err("[functions.a]\ncommand = \"x\"\ncolour = 1\n").contains("colour"));
        assert!(err("[functions.a]\nhandler = \"h\"\n").contains("command"));
        assert!(err("[function.a]\ncommand = \"x\"\n").contains("function"));
        assert!(err("[functions.a]\ncommand = \"x\"\ntimeout = \"soon\"\n").contains("soon"));
        assert!(err("[functions.a]\ncommand = \"x\"\nconcurrency = 0\n").contains("concurrency 0"));
        assert!(err("[functions.a]\ncommand = []\n").contains("empty"));
        assert!(err("[functions.\"a.b\"]\ncommand = \"x\"\n").contains("a.b"));
    }

    #[test]
    fn names_are_unique() {
        assert_eq!(
            check_unique(["a", "b", "a"].into_iter()),
            Err(FunctionsError::Duplicate("a".into()))
        );
        assert_eq!(check_unique(["a", "b"].into_iter()), Ok(()));
    }
}

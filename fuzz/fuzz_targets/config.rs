//! The command line and environment (`rapid::config::Args` + `Config::load`,
//! with of-watchdog's variable names): arbitrary argv built from rapid's own
//! flags and arbitrary values, and arbitrary values for its variables. Never
//! a panic: every input is a `Config` or a typed error (clap's or
//! `ConfigError`).
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use clap::{CommandFactory, Parser};
use libfuzzer_sys::fuzz_target;
use rapid::config::{apply_env_aliases, Args, Config};

#[derive(Debug, Arbitrary)]
enum Arg {
    /// One of rapid's flags (`--name`), with a value or not.
    Flag(u8, Option<String>),
    /// `--name=value`.
    Joined(u8, String),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
struct Input {
    argv: Vec<Arg>,
    env: Vec<(u8, String)>,
}

struct Names {
    flags: Vec<String>,
    vars: Vec<String>,
}

fn names() -> &'static Names {
    static NAMES: OnceLock<Names> = OnceLock::new();
    NAMES.get_or_init(|| {
        let cmd = Args::command();
        let mut flags = Vec::new();
        let mut vars = vec!["one_shot".to_owned(), "RAPID_ONE_SHOT".to_owned()];
        for a in cmd.get_arguments() {
            if let Some(l) = a.get_long() {
                flags.push(format!("--{l}"));
            }
            if let Some(e) = a.get_env() {
                vars.push(e.to_string_lossy().into_owned());
            }
        }
        Names { flags, vars }
    })
}

fuzz_target!(|input: Input| {
    let names = names();
    let mut argv = vec!["rapid".to_owned()];
    for a in input.argv.iter().take(32) {
        match a {
            Arg::Flag(i, v) => {
                argv.push(names.flags[*i as usize % names.flags.len()].clone());
                if let Some(v) = v {
                    argv.push(v.clone());
                }
            }
            Arg::Joined(i, v) => {
                argv.push(format!(
                    "{}={v}",
                    names.flags[*i as usize % names.flags.len()]
                ));
            }
            Arg::Raw(s) => argv.push(s.clone()),
        }
    }
    let mut set = Vec::new();
    for (i, v) in input.env.iter().take(16) {
        if v.contains('\0') {
            continue;
        }
        let name = &names.vars[*i as usize % names.vars.len()];
        std::env::set_var(name, v);
        set.push(name.clone());
    }
    apply_env_aliases();
    if let Ok(args) = Args::try_parse_from(&argv) {
        match Config::load(args) {
            Ok(_) => {}
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    // Every variable back as it was (none set), aliases' targets included.
    for name in &names.vars {
        std::env::remove_var(name);
    }
    drop(set);
});

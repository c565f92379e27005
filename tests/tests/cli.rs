//! SPEC §7: the command line — help, version, invalid values, exit codes.

#![allow(clippy::unwrap_used)] // tests fail loudly on unexpected values

use std::process::Command;

use rapid_tests::{free_port, rapid_bin};

/// Run rapid to completion; one that does not stop within 10 s (it started
/// serving instead of refusing its arguments) is killed and the test fails.
fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut c = Command::new(rapid_bin());
    c.args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("run rapid");
    let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rapid {args:?} did not stop within 10 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn help_explains_the_options() {
    let out = run(&["--help"], &[]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--runtime-interface-emulator-address",
        "--runtime-api-address",
        "--timeout",
        "--init-timeout",
        "--max-queue",
        "--extensions-dir",
        "--one-shot",
        "--control-api-address",
        "AWS_LAMBDA_FUNCTION_TIMEOUT",
        "BOOTSTRAP",
    ] {
        assert!(text.contains(opt), "--help lacks {opt}:\n{text}");
    }
}

#[test]
fn version() {
    let out = run(&["--version"], &[]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("rapid "));
}

#[test]
fn invalid_values_are_start_up_errors_naming_the_value() {
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 7] = [
        (&[], &[("AWS_LAMBDA_FUNCTION_TIMEOUT", "abc")], "abc"),
        (&["--timeout", "0"], &[], "'0'"),
        (
            &["--runtime-interface-emulator-address", "nowhere"],
            &[],
            "nowhere",
        ),
        (&["--max-queue", "1000001"], &[], "1000001"),
        (&["--concurrency", "0"], &[], "0"),
        (
            &["--concurrency", "2", "--min-warm", "3"],
            &[],
            "--min-warm 3",
        ),
        (&[], &[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")], "lots"),
    ];
    for (args, env, needle) in cases {
        let out = run(args, env);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(needle), "{args:?} {env:?}: {err}");
    }
}

#[test]
fn control_api_off_host_needs_a_token() {
    let out = run(&["--control-api-address", "0.0.0.0:7777"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--control-token-file"));
}

#[test]
fn an_address_in_use_is_exit_code_3() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = busy.local_addr().unwrap().to_string();
    let api = format!("127.0.0.1:{}", free_port());
    let out = run(
        &[
            "--runtime-interface-emulator-address",
            &addr,
            "--runtime-api-address",
            &api,
            "/bin/true",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&addr));
}

#[test]
fn an_unknown_option_is_a_usage_error() {
    let out = run(&["--no-such-option"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--no-such-option"));
}

#[test]
fn invalid_timeout_from_the_environment_says_which_value() {
    let out = run(&[], &[("AWS_LAMBDA_FUNCTION_TIMEOUT", "abc")]);
    assert_ne!(out.status.code(), Some(0));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("abc"), "{err}");
    assert!(
        err.contains("timeout") || err.contains("TIMEOUT"),
        "the message names the setting: {err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

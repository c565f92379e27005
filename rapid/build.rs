//! Link rapid's binary with the functions it runs at start-up and on a warm
//! invoke laid out together (`link-order.txt`, made by `make link-order`).
//!
//! The kernel maps a program's text 64 KiB around each page it touches
//! ("fault-around"), so code run once in a while, scattered over the binary,
//! keeps most of it resident. With the hot functions side by side, rapid's
//! resident text is about the size of the code it runs.
//!
//! Only for release builds on x86_64 Linux with Rust ≥ 1.90, whose default
//! linker (rust-lld) takes `--symbol-ordering-file`; `RAPID_LINK_ORDER=0`
//! turns it off (e.g. for another linker).

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=link-order.txt");
    println!("cargo:rerun-if-env-changed=RAPID_LINK_ORDER");
    println!("cargo:rerun-if-env-changed=RAPID_LINK_MAP");
    let wanted = std::env::var("RAPID_LINK_ORDER").map_or(true, |v| v != "0");
    let release = std::env::var("PROFILE").is_ok_and(|p| p == "release");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !(wanted && release && target == "x86_64-unknown-linux-gnu" && rust_lld_by_default()) {
        return;
    }
    // `make link-order` reads where each function landed from the linker's map.
    if let Ok(map) = std::env::var("RAPID_LINK_MAP") {
        println!("cargo:rustc-link-arg-bin=rapid=-Wl,-Map={map}");
    }
    let dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default();
    let order = Path::new(&dir).join("link-order.txt");
    if !order.is_file() {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=rapid=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    // Names of an older build that this one no longer has are fine.
    println!("cargo:rustc-link-arg-bin=rapid=-Wl,--no-warn-symbol-ordering");
}

/// Rust 1.90 made rust-lld the default linker of x86_64-unknown-linux-gnu.
fn rust_lld_by_default() -> bool {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = Command::new(rustc).arg("--version").output() else {
        return false;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let minor = text
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.split('.').nth(1))
        .and_then(|m| m.parse::<u32>().ok());
    // A custom linker in the flags may not be lld.
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    minor.is_some_and(|m| m >= 90) && !flags.contains("linker")
}

//! The figures of one run, as markdown.

use std::path::Path;
use std::time::Duration;

use crate::client::Latency;

/// Everything one run measured.
#[derive(Default)]
pub struct Report {
    pub floor: Option<Latency>,
    pub runtime_cycle: Option<Duration>,
    pub cpu_rapid_us: f64,
    pub cpu_function_us: f64,
    pub rapid: Option<Latency>,
    pub rss_idle_kib: u64,
    pub rss_load_kib: u64,
    pub hwm_kib: u64,
    pub concurrent_per_sec: f64,
    pub concurrent_total: usize,
    pub runtime_first_next: Duration,
    pub runtime_first_response: Duration,
    pub rapid_cold: Duration,
    pub with_extension: Option<Latency>,
    pub with_telemetry: Option<Latency>,
    pub telemetry_records: usize,
    pub shutdown_no_ext: Option<Duration>,
    pub shutdown_with_ext: Option<Duration>,
    pub one_shot: Option<Latency>,
    pub stream_floor_mib_s: Option<f64>,
    pub stream_rapid_mib_s: Option<f64>,
    pub stream_ttfb: Option<Duration>,
    pub stream_total: Option<Duration>,
    pub stream_rss_kib: u64,
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "✅"
    } else {
        "❌"
    }
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores, {cpu}, Linux {}", kernel.trim())
}

pub fn date() -> String {
    std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

impl Report {
    /// The markdown section.
    pub fn markdown(&self, quick: bool) -> String {
        let mut s = String::new();
        let push = |s: &mut String, line: String| {
            s.push_str(&line);
            s.push('\n');
        };
        push(
            &mut s,
            format!(
                "Measured by `make bench` on {} ({}){}. Everything runs on loopback on the same machine in one run; \
                 the client is the same lean keep-alive HTTP/1.1 client for the floor and for rapid, and every \
                 answer is checked. rapid's stdout (START/END/REPORT) goes to /dev/null.",
                date(),
                machine(),
                if quick { ", **quick run**" } else { "" }
            ),
        );
        push(&mut s, String::new());
        push(&mut s, "Reproduce: `make bench` (builds release binaries, then runs `target/release/rapid-bench --rapid target/release/rapid --function target/release/echo-function --stream-function target/release/fx-stream --out docs/benchmarks.md`).".into());
        push(&mut s, String::new());

        push(
            &mut s,
            "## Core invoke path (echo function on `lambda_runtime`)".into(),
        );
        push(&mut s, String::new());
        push(&mut s, "| figure | measured | target |".into());
        push(&mut s, "|---|---|---|".into());
        if let (Some(f), Some(r)) = (self.floor, self.rapid) {
            let ratio = r.p50_us / f.p50_us.max(1e-9);
            push(&mut s, format!("| one-hop floor (hyper echo) p50 / p99 | {:.0} µs / {:.0} µs ({:.0} req/s) | — |", f.p50_us, f.p99_us, f.per_sec));
            push(&mut s, format!("| warm invoke p50 | {:.0} µs ({ratio:.1}× floor) | ≤ 3× floor {} and ≤ 100 µs {} |", r.p50_us, mark(ratio <= 3.0), mark(r.p50_us <= 100.0)));
            push(&mut s, format!("| warm invoke p90 / p99 / max | {:.0} µs / {:.0} µs / {:.0} µs | p99 ≤ 500 µs {} |", r.p90_us, r.p99_us, r.max_us, mark(r.p99_us <= 500.0)));
            push(
                &mut s,
                format!(
                    "| sequential invokes/s (one connection, {} invokes) | {:.0} | ≥ 8,000 {} |",
                    r.count,
                    r.per_sec,
                    mark(r.per_sec >= 8000.0)
                ),
            );
        }
        if let Some(c) = self.runtime_cycle {
            push(&mut s, format!("| the function's own invoke cycle (`lambda_runtime` echo against a minimal in-process Runtime API) | {:.0} µs ({:.0} invokes/s) | — |", c.as_secs_f64() * 1e6, 1.0 / c.as_secs_f64()));
        }
        if self.cpu_function_us > 0.0 {
            push(
                &mut s,
                format!(
                    "| CPU per invoke (user + system, from /proc): the function / rapid | {:.0} µs / {:.0} µs | — |",
                    self.cpu_function_us, self.cpu_rapid_us
                ),
            );
        }
        push(
            &mut s,
            format!(
                "| 4 concurrent clients, invokes/s (all {} answered) | {:.0} | — |",
                self.concurrent_total, self.concurrent_per_sec
            ),
        );
        push(
            &mut s,
            format!(
                "| rapid RSS idle | {} | ≤ 6 MiB {} |",
                mib(self.rss_idle_kib),
                mark(self.rss_idle_kib <= 6 * 1024)
            ),
        );
        push(
            &mut s,
            format!(
                "| rapid RSS under load (max sampled) / VmHWM | {} / {} | ≤ 10 MiB {} |",
                mib(self.rss_load_kib),
                mib(self.hwm_kib),
                mark(self.rss_load_kib <= 10 * 1024)
            ),
        );
        let overhead = self.rapid_cold.saturating_sub(self.runtime_first_response);
        push(&mut s, format!("| runtime's own start-up: spawn → first `/next` / → first response (fake Runtime API) | {} / {} | — |", ms(self.runtime_first_next), ms(self.runtime_first_response)));
        push(
            &mut s,
            format!(
                "| cold start through rapid: spawn rapid → first invoke answered | {} | — |",
                ms(self.rapid_cold)
            ),
        );
        push(
            &mut s,
            format!(
                "| cold-start overhead of rapid | {} | ≤ 5 ms {} |",
                ms(overhead),
                mark(overhead <= Duration::from_millis(5))
            ),
        );
        push(&mut s, String::new());
        push(&mut s, "Reference numbers measured earlier on this machine with the same echo function (not re-run here): AWS RIE p50 396 µs / p99 4.0 ms / 2,205 invokes/s / RSS 13.6 MB; cargo-lambda's emulator p50 237 µs / 4,224 invokes/s / RSS 20.7 MB; one-hop floor 31 µs.".into());
        push(&mut s, String::new());

        push(&mut s, "## Extensions and shutdown".into());
        push(&mut s, String::new());
        push(&mut s, "| figure | measured | target |".into());
        push(&mut s, "|---|---|---|".into());
        if let (Some(r), Some(e)) = (self.rapid, self.with_extension) {
            let ratio = e.p50_us / r.p50_us.max(1e-9);
            push(&mut s, format!("| invoke p50 with one INVOKE-subscribed extension | {:.0} µs ({ratio:.2}× without) | ≤ 1.5× {} |", e.p50_us, mark(ratio <= 1.5)));
        }
        if let (Some(r), Some(t)) = (self.rapid, self.with_telemetry) {
            let ratio = t.p50_us / r.p50_us.max(1e-9);
            push(&mut s, format!("| invoke p50 with a telemetry subscriber (platform + function, TCP; {} records delivered) | {:.0} µs ({ratio:.2}× without) | ≤ 1.5× {} |", self.telemetry_records, t.p50_us, mark(ratio <= 1.5)));
        }
        if let Some(d) = self.shutdown_no_ext {
            push(
                &mut s,
                format!(
                    "| shutdown (SIGTERM → exit), no extensions | {} | < 50 ms {} |",
                    ms(d),
                    mark(d < Duration::from_millis(50))
                ),
            );
        }
        if let Some(d) = self.shutdown_with_ext {
            push(
                &mut s,
                format!(
                    "| shutdown, one extension that exits on SHUTDOWN | {} | < 100 ms {} |",
                    ms(d),
                    mark(d < Duration::from_millis(100))
                ),
            );
        }
        push(&mut s, String::new());

        push(&mut s, "## One-shot (a fresh sandbox per invoke)".into());
        push(&mut s, String::new());
        push(&mut s, "| figure | measured | target |".into());
        push(&mut s, "|---|---|---|".into());
        if let (Some(one), Some(r)) = (self.one_shot, self.rapid) {
            let per_invoke_us = 1e6 / one.per_sec.max(1e-9);
            let reset_us =
                per_invoke_us - r.p50_us - self.runtime_first_response.as_secs_f64() * 1e6;
            push(
                &mut s,
                format!(
                    "| one-shot invokes/s (echo, sequential) | {:.0} (p50 {:.2} ms) | ≥ 100 {} |",
                    one.per_sec,
                    one.p50_us / 1000.0,
                    mark(one.per_sec >= 100.0)
                ),
            );
            let shown = if reset_us < 100.0 {
                "< 0.1 ms (within the noise of the three figures it is computed from)".to_owned()
            } else {
                format!("{:.2} ms", reset_us / 1000.0)
            };
            push(&mut s, format!("| reset cost beyond the runtime's own start-up (per invoke − warm invoke − start-up) | {shown} | ≤ 5 ms {} |", mark(reset_us <= 5000.0)));
        }
        push(&mut s, String::new());

        if self.stream_floor_mib_s.is_none() {
            // Run without --stream-function: no streaming section.
            return s;
        }
        push(
            &mut s,
            "## Streaming (100 MiB response, 64 KiB chunks; median of alternating runs)".into(),
        );
        push(&mut s, String::new());
        push(&mut s, "| figure | measured | target |".into());
        push(&mut s, "|---|---|---|".into());
        if let (Some(f), Some(r)) = (self.stream_floor_mib_s, self.stream_rapid_mib_s) {
            push(
                &mut s,
                format!("| direct loopback copy (floor server → client) | {f:.0} MiB/s | — |"),
            );
            push(&mut s, format!("| through rapid (`lambda_runtime` streaming function → rapid → client) | {r:.0} MiB/s ({:.0} % of direct) | ≥ 50 % {} |", 100.0 * r / f, mark(r >= 0.5 * f)));
        }
        if let (Some(t), Some(total)) = (self.stream_ttfb, self.stream_total) {
            push(&mut s, format!("| time to first byte (5 chunks 100 ms apart) | {} (whole stream {}) | well before the end {} |", ms(t), ms(total), mark(t * 4 < total)));
        }
        if self.stream_rss_kib > 0 {
            push(
                &mut s,
                format!(
                    "| rapid RSS during the 100 MiB stream (max sampled) | {} | flat {} |",
                    mib(self.stream_rss_kib),
                    mark(self.stream_rss_kib <= 16 * 1024)
                ),
            );
        }
        s
    }
}

/// The markers around the part of the file the core bench owns.
pub const START: &str = "<!-- bench:core:start -->";
pub const END: &str = "<!-- bench:core:end -->";

/// Write the core report to `path`: a new file is `# Benchmarks` and the
/// marked block; in an existing one only the block between [`START`] and
/// [`END`] is replaced, so sections other benchmarks add around it are kept.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let block = format!("{START}\n{}\n{END}", text.trim_end());
    let out = match std::fs::read_to_string(path) {
        Ok(old) => splice(&old, &block),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => format!("# Benchmarks\n\n{block}\n"),
        Err(e) => return Err(e),
    };
    // Write beside and rename, so an interrupted run never leaves half a file.
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(&tmp, path)
}

/// Write a named section (`<!-- bench:NAME:start -->` … `end`) into `path`:
/// replaced where it is, else added before `<!-- manual -->` (or at the end).
pub fn write_section(path: &Path, name: &str, text: &str) -> std::io::Result<()> {
    let (start, end) = (
        format!("<!-- bench:{name}:start -->"),
        format!("<!-- bench:{name}:end -->"),
    );
    let block = format!("{start}\n{}\n{end}", text.trim_end());
    let old = match std::fs::read_to_string(path) {
        Ok(old) => old,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "# Benchmarks\n".to_owned(),
        Err(e) => return Err(e),
    };
    let out = match (old.find(&start), old.find(&end)) {
        (Some(a), Some(b)) if b > a => format!("{}{block}{}", &old[..a], &old[b + end.len()..]),
        _ => match old.find("<!-- manual -->") {
            Some(m) => format!("{}{block}\n\n{}", &old[..m], &old[m..]),
            None => format!("{}\n\n{block}\n", old.trim_end()),
        },
    };
    let tmp = path.with_extension("md.tmp");
    std::fs::write(&tmp, out)?;
    std::fs::rename(&tmp, path)
}

/// `old` with its marked block replaced by `block`.
fn splice(old: &str, block: &str) -> String {
    if let Some(start) = old.find(START) {
        if let Some(end) = old[start..].find(END).map(|e| start + e + END.len()) {
            return format!("{}{block}{}", &old[..start], &old[end..]);
        }
    }
    if old.trim().is_empty() {
        return format!("# Benchmarks\n\n{block}\n");
    }
    // A file written before the markers existed: its generated part is
    // everything before `<!-- manual -->`; keep what follows.
    if let Some(manual) = old.find("<!-- manual -->") {
        return format!("# Benchmarks\n\n{block}\n\n{}", &old[manual..]);
    }
    // Anything else is kept whole: the block goes after its first line if
    // that is a title, else at the top.
    match old.split_once('\n') {
        Some((title, rest)) if title.starts_with("# ") => {
            format!("{title}\n\n{block}\n{rest}")
        }
        _ => format!("# Benchmarks\n\n{block}\n\n{old}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_only_the_marked_block() {
        let old =
            format!("# Benchmarks\n\nintro\n\n{START}\nold figures\n{END}\n\n## Other\n\nkept\n");
        let new = splice(&old, &format!("{START}\nnew figures\n{END}"));
        assert_eq!(
            new,
            format!("# Benchmarks\n\nintro\n\n{START}\nnew figures\n{END}\n\n## Other\n\nkept\n")
        );
        // Idempotent.
        assert_eq!(splice(&new, &format!("{START}\nnew figures\n{END}")), new);
    }

    #[test]
    fn a_file_from_before_the_markers_keeps_its_manual_part() {
        let old = "# Benchmarks\n\nold generated\n\n<!-- manual -->\n## Reading\n";
        let new = splice(old, &format!("{START}\nfigures\n{END}"));
        assert_eq!(
            new,
            format!("# Benchmarks\n\n{START}\nfigures\n{END}\n\n<!-- manual -->\n## Reading\n")
        );
    }

    #[test]
    fn a_file_without_markers_is_kept() {
        let new = splice("# Benchmarks\n\n## Other\n", &format!("{START}\nx\n{END}"));
        assert_eq!(
            new,
            format!("# Benchmarks\n\n{START}\nx\n{END}\n\n## Other\n")
        );
        let new = splice("", &format!("{START}\nx\n{END}"));
        assert_eq!(new, format!("# Benchmarks\n\n{START}\nx\n{END}\n"));
    }

    #[test]
    fn an_unfinished_block_is_not_spliced_into() {
        let old = format!("# Benchmarks\n\n{START}\nno end\n");
        let new = splice(&old, &format!("{START}\nx\n{END}"));
        assert!(new.contains("no end") && new.contains(END));
    }
}

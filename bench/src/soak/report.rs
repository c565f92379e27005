//! The Reliability section of docs/benchmarks.md from the soak's figures.

use std::fmt::Write as _;
use std::time::Duration;

use super::chaos::{self, Chaos, Fault};
use super::fdlimit;
use super::{Opts, Sample, Series};

pub struct Figures<'a> {
    pub opts: &'a Opts,
    pub total: Duration,
    pub seq: (&'a Series, Duration),
    pub con: (&'a Series, Duration),
    pub chaos: &'a Chaos,
    /// When the run began (UTC).
    pub date: String,
    /// The 1-minute load average at the start and after each phase.
    pub loads: Vec<(&'static str, String)>,
}

fn rate(n: usize, t: Duration) -> f64 {
    n as f64 / t.as_secs_f64().max(1e-9)
}

fn samples(s: &[Sample]) -> String {
    s.iter()
        .map(|s| format!("{}/{}", s.rss_kib, s.fds))
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn markdown(f: &Figures<'_>) -> String {
    let o = f.opts;
    let c = f.chaos;
    let mut out = String::new();
    let _ = write!(
        out,
        "## Reliability (make soak: loopback, {cpus} CPUs, {total:.0} s)\n\n\
| load held | rate | rapid's RSS and descriptors |\n|---|---|---|\n\
| {seq} sequential invokes, one connection, each its own echo | {seq_rate:.0}/s ({seq_t:.0} s) | {seq_sum} |\n\
| {conc} concurrent invokes, {clients} connections, each its own echo | {con_rate:.0}/s ({con_t:.0} s) | {con_sum} |\n\n\
Samples (RSS kB/descriptors), sequential: {seq_samples}\n\n\
Samples, concurrent (every 0.5 s): {con_samples}\n\n",
        cpus = std::thread::available_parallelism().map_or(1, |n| n.get()),
        total = f.total.as_secs_f64(),
        seq = o.sequential,
        seq_rate = rate(o.sequential, f.seq.1),
        seq_t = f.seq.1.as_secs_f64(),
        seq_sum = f.seq.0.summary(),
        seq_samples = samples(&f.seq.0 .0),
        conc = o.concurrent,
        clients = o.clients,
        con_rate = rate(o.concurrent, f.con.1),
        con_t = f.con.1.as_secs_f64(),
        con_sum = f.con.0.summary(),
        con_samples = samples(&f.con.0 .0),
    );
    let _ = write!(
        out,
        "Chaos run: {inv} invokes on a rapid serving the echo function with one external extension \
(`{flags}`), beside a rapid whose runtime stalls every upload (`--timeout {stall}`) and a rapid \
under RLIMIT_NOFILE {nofile} (`--max-connections 4096 --header-timeout {ht}`). \
Each invoke is one fresh connection, read to its one answer and then to the connection's end.\n\n\
| fault injected | times | invokes under it | their own 200 echo | a JSON error |\n|---|---|---|---|---|\n",
        inv = c.invokes,
        flags = chaos::MAIN_FLAGS.join(" "),
        stall = chaos::STALL_TIMEOUT,
        nofile = fdlimit::NOFILE,
        ht = fdlimit::HEADER_TIMEOUT,
    );
    for (fault, t) in &c.faults {
        let times = if *fault == Fault::None {
            "–".to_owned()
        } else {
            t.injected.to_string()
        };
        let _ = writeln!(
            out,
            "| {} | {times} | {} | {} | {} |",
            fault.describe(),
            t.invokes,
            t.ok,
            t.errors
        );
    }
    let _ = write!(out, "\n| JSON error answered | count |\n|---|---|\n");
    for (ty, n) in &c.error_types {
        let _ = writeln!(out, "| `{ty}` | {n} |");
    }
    let _ = write!(
        out,
        "\n| bad input tried (beside the invokes) | times, all refused (4xx or closed) |\n|---|---|\n"
    );
    for (name, n) in &c.bad_inputs {
        let _ = writeln!(out, "| {name} | {n} |");
    }
    let _ = write!(
        out,
        "\n| checked | result |\n|---|---|\n\
| invokes | {inv} ({ok} echo, {je} JSON error) |\n\
| **answers lost** | **{lost}** |\n\
| answers wrong or duplicated | {wrong} wrong, {dup} duplicated |\n\
| stalled uploads answered `Sandbox.Timedout` | all, the slowest {stall:.2} s after the invoke (timeout {st} s) |\n\
| descriptor exhaustion | accept failed with EMFILE (os error 24, in rapid's log) in every flood, rapid at {fds} open descriptors; the invoke sent during a flood answered within {during:.2} s, the one after within {after:.3} s |\n\
| chaos rapid's RSS kB/descriptors, every 100 invokes and settled (RSS must be flat over the second half, descriptors back at the start) | {main} |\n\
| processes left behind (process table scanned for {seen} pids rapid started, its binaries and the soak's tag) | {left} |\n",
        inv = c.invokes,
        ok = c.ok,
        je = c.json_errors,
        lost = c.lost,
        wrong = c.wrong,
        dup = c.duplicated,
        stall = c.stall_worst.as_secs_f64(),
        st = chaos::STALL_TIMEOUT,
        fds = c.fd.fds,
        during = c.fd.during.as_secs_f64(),
        after = c.fd.after.as_secs_f64(),
        main = samples(&c.main),
        seen = c.pids_seen,
        left = c.left.len(),
    );
    out.push_str(
        "\nHow to read it: a JSON error is the right answer for an invoke a fault hit — \
`Runtime.ExitError` when its runtime was killed, `Extension.Crash` when the extension was, \
`Sandbox.Timedout` when a stop or a stalled upload outlasted the deadline — and the sandbox that \
lost a process resets and serves the next invoke. An invoke counts as lost when its connection \
ends or 30 s pass without an answer, wrong when the answer is neither its own echo nor a JSON \
error, duplicated when anything follows the answer on its connection. The chaos rapid's RSS \
rises once in the first half to the allocator's high-water mark (a 2 MiB head fills hyper's \
1 MiB read buffer; the freed memory stays with the allocator, and more such heads do not grow \
it), so flatness is checked over the second half.\n",
    );
    let loads: Vec<String> = f.loads.iter().map(|(at, l)| format!("{at} {l}")).collect();
    let _ = write!(
        out,
        "\nMeasured by `make soak` (`rapid-bench soak --sequential {seq} --concurrent {conc} --clients {clients} --chaos {chaos}`) \
from {date}. The machine's 1-minute load average — other work on it shows here, and the rates only mean something beside it: \
{loads}. The run fails (exit 1) on an answer lost, wrong or duplicated, RSS or descriptors not flat, a bad input not refused, \
a stalled upload not answered `Sandbox.Timedout` by its deadline, a flood without EMFILE, or a process left behind.\n",
        seq = o.sequential,
        conc = o.concurrent,
        clients = o.clients,
        chaos = o.chaos,
        date = f.date,
        loads = loads.join(", "),
    );
    out
}

//! The chaos run: invokes on one rapid (the echo function and an external
//! extension) while faults are injected — runtimes and extensions SIGKILLed
//! or SIGSTOPped mid-invoke, slow and half-closed clients, connections reset
//! mid-body, the connection bound flooded, malformed requests — beside a
//! rapid whose runtime stalls every upload (the invoker must get
//! `Sandbox.Timedout` at the deadline) and a rapid under a low descriptor
//! limit flooded until `accept` fails with EMFILE. Every invoke must get
//! exactly one well-formed answer; no process may be left behind.

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::clients::{self, one_invoke, Answer, Client};
use super::{fdlimit, leftovers, sample, wait_for, Opts, Sample};
use crate::procs::{self, Proc};

/// The main rapid's options in the chaos run.
pub const MAIN_FLAGS: [&str; 10] = [
    "--timeout",
    "2",
    "--max-queue",
    "1024",
    "--max-connections",
    "48",
    "--header-timeout",
    "1s",
    "--body-timeout",
    "1s",
];
/// The stalling runtime's rapid: its timeout, in seconds.
pub const STALL_TIMEOUT: u64 = 1;
/// How late past the deadline a stalled upload's answer may come (the
/// machine is shared: generous, but far below "when the upload ends").
const STALL_SLACK: Duration = Duration::from_secs(3);
/// Silent clients against the main rapid's bound of 48.
const BOUND_FLOOD: usize = 64;

/// A fault the chaos run injects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    KillRuntime,
    KillExtension,
    StopRuntime,
    StopExtension,
    ResetMidBody,
    HalfClose,
    Slow,
    StallUpload,
    ConnectionBound,
    FdExhaustion,
    BadInput,
    None,
}

impl Fault {
    pub fn describe(self) -> &'static str {
        match self {
            Fault::KillRuntime => "runtime SIGKILLed mid-invoke",
            Fault::KillExtension => "extension SIGKILLed mid-invoke",
            Fault::StopRuntime => "runtime SIGSTOPped up to 3 s (timeout 2 s), then SIGCONT",
            Fault::StopExtension => "extension SIGSTOPped up to 3 s, then SIGCONT",
            Fault::ResetMidBody => "a connection reset (RST) mid-body beside the invoke",
            Fault::HalfClose => "client half-closes (SHUT_WR) after its request",
            Fault::Slow => "slow client (a body byte every 3 ms)",
            Fault::StallUpload => {
                "runtime stalls its upload (Content-Length 100, 2 bytes sent; timeout 1 s)"
            }
            Fault::ConnectionBound => "connection bound (48) flooded by 64 silent clients",
            Fault::FdExhaustion => {
                "descriptors exhausted: RLIMIT_NOFILE 128, 200 silent clients, accept hit EMFILE"
            }
            Fault::BadInput => "a malformed request beside the invoke",
            Fault::None => "none (plain invoke)",
        }
    }
}

/// How the invokes under one fault were answered.
#[derive(Debug, Default)]
pub struct Tally {
    pub injected: usize,
    pub invokes: usize,
    pub ok: usize,
    pub errors: usize,
}

/// What the chaos run counted.
#[derive(Debug, Default)]
pub struct Chaos {
    pub faults: BTreeMap<Fault, Tally>,
    pub error_types: BTreeMap<String, usize>,
    pub bad_inputs: BTreeMap<&'static str, usize>,
    pub invokes: usize,
    pub ok: usize,
    pub json_errors: usize,
    pub lost: usize,
    pub wrong: usize,
    pub duplicated: usize,
    pub stall_worst: Duration,
    pub fd: fdlimit::Worst,
    pub main: Vec<Sample>,
    pub left: Vec<String>,
    pub pids_seen: usize,
}

impl Chaos {
    fn tally(&mut self, fault: Fault, a: &Answer) {
        let t = self.faults.entry(fault).or_default();
        t.invokes += 1;
        self.invokes += 1;
        match a {
            Answer::Ok => {
                t.ok += 1;
                self.ok += 1;
            }
            Answer::JsonError(ty) => {
                t.errors += 1;
                self.json_errors += 1;
                *self.error_types.entry(ty.clone()).or_default() += 1;
            }
            Answer::Wrong(why) => {
                eprintln!("soak: wrong answer under {fault:?}: {why}");
                self.wrong += 1;
            }
            Answer::Duplicate(why) => {
                eprintln!("soak: a second answer under {fault:?}: {why}");
                self.duplicated += 1;
            }
            Answer::Lost(why) => {
                eprintln!("soak: answer lost under {fault:?}: {why}");
                self.lost += 1;
            }
        }
    }

    fn injected(&mut self, fault: Fault) {
        self.faults.entry(fault).or_default().injected += 1;
    }

    /// Every invoke answered once and well: the soak passes.
    pub fn check(&self) -> Result<(), String> {
        if self.lost > 0 || self.wrong > 0 || self.duplicated > 0 {
            return Err(format!(
                "chaos: {} answers lost, {} wrong, {} duplicated (of {} invokes)",
                self.lost, self.wrong, self.duplicated, self.invokes
            ));
        }
        if !self.left.is_empty() {
            return Err(format!("processes left behind: {:?}", self.left));
        }
        // RSS flat over the second half. The first half holds the one-time
        // growth to the allocator's high-water mark (the 2 MiB head fills
        // hyper's 1 MiB read buffer once; the freed memory stays with the
        // allocator and does not grow again however often it comes).
        let mid = self
            .main
            .get(self.main.len() / 2)
            .copied()
            .unwrap_or_default();
        let last = self.main.last().copied().unwrap_or_default();
        if last.rss_kib > mid.rss_kib + mid.rss_kib / 5 + 1024 {
            return Err(format!(
                "chaos: RSS grew over the second half: {} → {} kB",
                mid.rss_kib, last.rss_kib
            ));
        }
        Ok(())
    }
}

/// The soak's own scratch directory, named by its tag (removed on drop).
struct Scratch(PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn script(path: &Path, body: &str) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, body)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Children of `rapid`, each as (pid, whether it is the extension).
fn children(rapid: i32, tag: &str) -> Vec<(i32, bool)> {
    procs::children(rapid)
        .into_iter()
        .map(|pid| {
            let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            (pid, String::from_utf8_lossy(&cmd).contains(tag))
        })
        .collect()
}

fn signal(pid: i32, sig: i32) {
    // SAFETY: signalling a process of a sandbox the soak started.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// The chaos run's three rapids.
struct Rapids {
    main: Proc,
    stall: Proc,
    limited: fdlimit::Limited,
}

impl Rapids {
    /// Note every process the rapids run now (pid and start time).
    fn note(&self, seen: &mut BTreeMap<i32, u64>) {
        for r in [self.main.pid(), self.stall.pid(), self.limited.proc.pid()] {
            for pid in procs::children(r) {
                if let Some(t) = leftovers::start_time(pid) {
                    seen.insert(pid, t);
                }
            }
        }
    }
}

pub fn run(o: &Opts) -> Result<Chaos, String> {
    let tag = format!("rapid-soak-{}", std::process::id());
    let dir = std::env::temp_dir().join(&tag);
    let ext_dir = dir.join("extensions");
    std::fs::create_dir_all(&ext_dir).map_err(|e| format!("{}: {e}", ext_dir.display()))?;
    let _scratch = Scratch(dir.clone());
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let ext_name = format!("{tag}-ext");
    script(
        &ext_dir.join(&ext_name),
        &format!("#!/bin/sh\nexec '{}' extension {ext_name}\n", exe.display()),
    )?;
    let stall_boot = dir.join("stall-bootstrap");
    script(
        &stall_boot,
        &format!("#!/bin/sh\nexec '{}' stall-runtime {tag}\n", exe.display()),
    )?;

    let flags: Vec<String> = MAIN_FLAGS.iter().map(|s| (*s).to_owned()).collect();
    let main = procs::rapid(&o.rapid, &o.function, &flags, Some(&ext_dir))
        .map_err(|e| format!("chaos rapid: {e}"))?;
    super::warm_up(main.addr)?;
    let stall_flags = vec!["--timeout".to_owned(), STALL_TIMEOUT.to_string()];
    let stall = procs::rapid(&o.rapid, &stall_boot, &stall_flags, None)
        .map_err(|e| format!("stalling rapid: {e}"))?;
    let limited = fdlimit::start(o, &dir)?;
    let mut rapids = Rapids {
        main,
        stall,
        limited,
    };

    let mut c = Chaos::default();
    let mut seen: BTreeMap<i32, u64> = BTreeMap::new();
    let inputs = clients::bad_inputs();
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut rand = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let main_addr = rapids.main.addr;
    let main_pid = rapids.main.pid();
    c.main.push(sample(main_pid));
    let mut payload = o.chaos * 10;
    for i in 0..o.chaos {
        rapids.note(&mut seen);
        if i % 100 == 99 {
            c.main.push(sample(main_pid));
        }
        // Scheduled faults first (every 100 invokes each), random ones otherwise.
        let fault = if i % 100 == 50 {
            Fault::FdExhaustion
        } else if i % 100 == 0 {
            Fault::ConnectionBound
        } else {
            match rand(40) {
                0..=3 => Fault::KillRuntime,
                4 | 5 => Fault::KillExtension,
                6 | 7 => Fault::StopRuntime,
                8 | 9 => Fault::StopExtension,
                10 | 11 => Fault::ResetMidBody,
                12 | 13 => Fault::HalfClose,
                14 | 15 => Fault::Slow,
                16 => Fault::StallUpload,
                17 | 18 => Fault::BadInput,
                _ => Fault::None,
            }
        };
        let client = match fault {
            Fault::HalfClose => Client::HalfClose,
            Fault::Slow => Client::Slow,
            _ => Client::Plain,
        };
        let invoke = std::thread::spawn(move || one_invoke(main_addr, i, client));
        match fault {
            Fault::KillRuntime | Fault::KillExtension => {
                let want_ext = fault == Fault::KillExtension;
                std::thread::sleep(Duration::from_micros(rand(2000)));
                let mut hit = false;
                for (pid, ext) in children(main_pid, &tag) {
                    if ext == want_ext {
                        signal(pid, libc::SIGKILL);
                        hit = true;
                    }
                }
                if hit {
                    c.injected(fault);
                }
            }
            Fault::StopRuntime | Fault::StopExtension => {
                let want_ext = fault == Fault::StopExtension;
                let pids: Vec<i32> = children(main_pid, &tag)
                    .into_iter()
                    .filter(|(_, ext)| *ext == want_ext)
                    .map(|(pid, _)| pid)
                    .collect();
                for pid in &pids {
                    signal(*pid, libc::SIGSTOP);
                }
                // How long the process stays stopped is the fault.
                std::thread::sleep(Duration::from_millis(rand(3000)));
                for pid in &pids {
                    signal(*pid, libc::SIGCONT);
                }
                if !pids.is_empty() {
                    c.injected(fault);
                }
            }
            Fault::ResetMidBody => {
                clients::reset_mid_body(main_addr);
                c.injected(fault);
            }
            Fault::HalfClose | Fault::Slow => c.injected(fault),
            Fault::StallUpload => {
                payload += 1;
                let (a, took) = one_invoke(rapids.stall.addr, payload, Client::Plain);
                let deadline = Duration::from_secs(STALL_TIMEOUT) + STALL_SLACK;
                let a = match a {
                    Answer::JsonError(t) if t == "Sandbox.Timedout" && took <= deadline => {
                        Answer::JsonError(t)
                    }
                    Answer::JsonError(t) => Answer::Wrong(format!(
                        "a stalled upload answered {t} after {took:?} (want Sandbox.Timedout within {deadline:?})"
                    )),
                    other => other,
                };
                c.stall_worst = c.stall_worst.max(took);
                c.injected(fault);
                c.tally(fault, &a);
            }
            Fault::ConnectionBound => {
                let hold: Vec<_> = (0..BOUND_FLOOD)
                    .filter_map(|_| TcpStream::connect(main_addr).ok())
                    .collect();
                payload += 1;
                let (a, _) = one_invoke(main_addr, payload, Client::Plain);
                drop(hold);
                c.injected(fault);
                c.tally(fault, &a);
            }
            Fault::FdExhaustion => {
                payload += 2;
                let f = rapids.limited.flood(payload - 1)?;
                c.fd.add(&f);
                c.injected(fault);
                c.tally(fault, &f.during.0);
                c.tally(fault, &f.after.0);
            }
            Fault::BadInput => {
                let (name, input) = &inputs[rand(inputs.len() as u64) as usize];
                clients::refused(main_addr, input)
                    .map_err(|e| format!("bad input {name:?} was not refused: {e}"))?;
                *c.bad_inputs.entry(name).or_default() += 1;
                c.injected(fault);
            }
            Fault::None => {}
        }
        let (answer, _) = invoke
            .join()
            .map_err(|_| "a client thread panicked".to_owned())?;
        // The stall and the descriptor floods hit the other two rapids: the
        // main rapid's invoke beside them counts as a plain one.
        let beside = match fault {
            Fault::StallUpload | Fault::FdExhaustion => Fault::None,
            f => f,
        };
        c.tally(beside, &answer);
    }

    // Settled: answering again, descriptors back where they started.
    let start_fds = c.main.first().map_or(0, |s| s.fds);
    payload += 1;
    let settled = wait_for(Duration::from_secs(15), || {
        matches!(one_invoke(main_addr, payload, Client::Plain).0, Answer::Ok)
            && sample(main_pid).fds <= start_fds + 4
    });
    c.main.push(sample(main_pid));
    if !settled {
        return Err(format!(
            "after the chaos rapid did not settle (answering, descriptors {start_fds} → {})",
            sample(main_pid).fds
        ));
    }

    // No process left behind once every rapid is gone.
    rapids.note(&mut seen);
    c.pids_seen = seen.len();
    for (name, p) in [
        ("chaos", &mut rapids.main),
        ("stalling", &mut rapids.stall),
        ("descriptor-limited", &mut rapids.limited.proc),
    ] {
        if p.terminate(Duration::from_secs(10)).is_none() {
            return Err(format!("the {name} rapid did not exit on SIGTERM"));
        }
    }
    let exes = [o.rapid.clone(), o.function.clone()];
    c.left = leftovers::left(&seen, &exes, &tag);
    Ok(c)
}

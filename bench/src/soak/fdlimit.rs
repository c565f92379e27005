//! Real descriptor exhaustion: rapid under a low RLIMIT_NOFILE with a
//! connection bound above it, flooded with silent clients until `accept`
//! fails with EMFILE (seen in rapid's own log); an invoke sent meanwhile must
//! still be answered (the header timeout frees descriptors, the accept loop's
//! back-off picks it up), and once the flood ends rapid answers at once.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::clients::{one_invoke, Answer, Client};
use super::{wait_for, Opts};
use crate::procs::{self, Launch, Proc};

/// rapid's RLIMIT_NOFILE in this part of the run.
pub const NOFILE: u64 = 128;
/// Silent clients per flood: more than the descriptors rapid has.
pub const FLOOD: usize = 200;

/// The rapid under the low descriptor limit, and its log.
pub struct Limited {
    pub proc: Proc,
    log: PathBuf,
    /// "accept failed … Too many open files" lines seen so far.
    emfiles: usize,
}

/// The header timeout of this rapid: how long a silent client holds a descriptor.
pub const HEADER_TIMEOUT: &str = "1s";

pub fn start(o: &Opts, dir: &Path) -> Result<Limited, String> {
    let log = dir.join("fd-limited.log");
    let file = std::fs::File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let extra: Vec<String> = [
        "--max-connections",
        "4096",
        "--header-timeout",
        HEADER_TIMEOUT,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let proc = procs::rapid_with(
        &o.rapid,
        &o.function,
        &extra,
        None,
        Launch {
            nofile: Some(NOFILE),
            stderr: Some(file),
            ..Launch::default()
        },
    )
    .map_err(|e| format!("rapid under RLIMIT_NOFILE {NOFILE}: {e}"))?;
    super::warm_up(proc.addr)?;
    Ok(Limited {
        proc,
        log,
        emfiles: 0,
    })
}

/// What one flood showed.
pub struct Flood {
    /// rapid's open descriptors when accept failed.
    pub fds_at_emfile: usize,
    /// The invoke sent during the flood: its answer and how long it took.
    pub during: (Answer, Duration),
    /// The invoke sent after the flood ended.
    pub after: (Answer, Duration),
}

impl Limited {
    fn emfile_lines(&self) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("accept failed") && l.contains("os error 24"))
            .count()
    }

    /// One flood; `i` numbers the two invokes' payloads.
    pub fn flood(&mut self, i: usize) -> Result<Flood, String> {
        let addr = self.proc.addr;
        let hold: Vec<TcpStream> = (0..FLOOD)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        let before = self.emfiles;
        let mut fds_at_emfile = 0;
        let seen = wait_for(Duration::from_secs(10), || {
            fds_at_emfile = fds_at_emfile.max(fd_count(self.proc.pid()));
            self.emfile_lines() > before
        });
        if !seen {
            return Err(format!(
                "{} silent clients did not exhaust rapid's descriptors (RLIMIT_NOFILE {NOFILE}, {fds_at_emfile} open): no EMFILE in its log",
                hold.len()
            ));
        }
        let during = one_invoke(addr, i, Client::Plain);
        drop(hold);
        let after = one_invoke(addr, i + 1, Client::Plain);
        self.emfiles = self.emfile_lines();
        Ok(Flood {
            fds_at_emfile,
            during,
            after,
        })
    }
}

fn fd_count(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// How long rapid took at most to answer during and after the floods.
#[derive(Debug, Default)]
pub struct Worst {
    pub during: Duration,
    pub after: Duration,
    pub fds: usize,
}

impl Worst {
    pub fn add(&mut self, f: &Flood) {
        self.during = self.during.max(f.during.1);
        self.after = self.after.max(f.after.1);
        self.fds = self.fds.max(f.fds_at_emfile);
    }
}

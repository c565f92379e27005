//! microVM init mode (`--init`, or automatic when rapid is PID 1 and no
//! `/proc` is mounted): prepare the minimal system a function expects, and at
//! the end power the machine off instead of exiting (PID 1 must never exit in
//! a VM). Every step is logged; a failing step is an error naming it.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// A step of the preparation that failed.
#[derive(Debug, thiserror::Error)]
#[error("init step '{step}' failed: {source}")]
pub struct InitError {
    /// What was being done.
    pub step: String,
    /// Why it failed.
    pub source: io::Error,
}

fn check(step: &str, rc: libc::c_int) -> Result<(), InitError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(InitError {
            step: step.to_owned(),
            source: io::Error::last_os_error(),
        })
    }
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_default()
}

/// Mount points listed in /proc/self/mountinfo.
fn mount_points() -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4).map(str::to_owned))
        .collect()
}

fn mount(fstype: &str, target: &str, flags: libc::c_ulong, data: &str) -> Result<(), InitError> {
    std::fs::create_dir_all(target).map_err(|e| InitError {
        step: format!("mkdir {target}"),
        source: e,
    })?;
    let (src, tgt, fs, d) = (cstr(fstype), cstr(target), cstr(fstype), cstr(data));
    // SAFETY: all pointers are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            tgt.as_ptr(),
            fs.as_ptr(),
            flags,
            if data.is_empty() {
                std::ptr::null()
            } else {
                d.as_ptr().cast()
            },
        )
    };
    check(&format!("mount {fstype} on {target}"), rc)?;
    tracing::info!(fstype, target, "init: mounted");
    Ok(())
}

fn loopback_up() -> Result<(), InitError> {
    // SAFETY: a plain datagram socket used only for interface ioctls, closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return check("socket for loopback", -1);
    }
    // SAFETY: ifreq is plain data; the name fits (2 bytes + NUL); fd is ours.
    let rc = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let mut rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
        if rc == 0 {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
        }
        libc::close(fd);
        rc
    };
    check("bring up loopback", rc)?;
    tracing::info!("init: loopback up");
    Ok(())
}

fn raise_nofile() -> Result<(), InitError> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: lim is a valid out-pointer.
    check("getrlimit NOFILE", unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim)
    })?;
    lim.rlim_cur = lim.rlim_max;
    // SAFETY: lim is a valid in-pointer.
    check("setrlimit NOFILE", unsafe {
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim)
    })?;
    tracing::info!(nofile = lim.rlim_cur, "init: RLIMIT_NOFILE raised");
    Ok(())
}

fn set_hostname(name: &str) -> Result<(), InitError> {
    // SAFETY: name points to name.len() valid bytes.
    let rc = unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) };
    check(&format!("sethostname {name}"), rc)?;
    tracing::info!(hostname = name, "init: hostname set");
    Ok(())
}

/// Make `sandbox.localdomain` (and localhost) resolve to loopback.
fn hosts_file(path: &Path) -> Result<(), InitError> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let has = |name: &str| {
        text.lines().any(|l| {
            !l.trim_start().starts_with('#') && l.split_whitespace().skip(1).any(|n| n == name)
        })
    };
    if has("sandbox.localdomain") && has("localhost") {
        return Ok(());
    }
    let mut out = text;
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("127.0.0.1 localhost sandbox.localdomain\n");
    std::fs::write(path, out).map_err(|e| InitError {
        step: format!("write {}", path.display()),
        source: e,
    })?;
    tracing::info!(path = %path.display(), "init: sandbox.localdomain mapped to 127.0.0.1");
    Ok(())
}

/// Whether rapid should act as a VM's init without being asked: PID 1 with
/// no `/proc` mounted.
pub fn auto_detect() -> bool {
    std::process::id() == 1 && !Path::new("/proc/self").exists()
}

/// Prepare the system: filesystems, hostname, loopback, limits, hosts file.
pub fn prepare(hostname: &str) -> Result<(), InitError> {
    tracing::info!("init: preparing the machine");
    // A fresh /proc for this PID namespace, whatever was there.
    mount(
        "proc",
        "/proc",
        libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
        "",
    )?;
    let mounted = mount_points();
    let want: [(&str, &str, libc::c_ulong, &str); 6] = [
        (
            "sysfs",
            "/sys",
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            "",
        ),
        ("devtmpfs", "/dev", libc::MS_NOSUID, "mode=0755"),
        (
            "devpts",
            "/dev/pts",
            libc::MS_NOSUID | libc::MS_NOEXEC,
            "mode=0620,ptmxmode=0666",
        ),
        (
            "tmpfs",
            "/dev/shm",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=1777",
        ),
        (
            "tmpfs",
            "/tmp",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=1777",
        ),
        (
            "tmpfs",
            "/run",
            libc::MS_NOSUID | libc::MS_NODEV,
            "mode=0755",
        ),
    ];
    for (fstype, target, flags, data) in want {
        if mounted.iter().any(|m| m == target) {
            tracing::info!(target, "init: already mounted");
            continue;
        }
        mount(fstype, target, flags, data)?;
    }
    set_hostname(hostname)?;
    loopback_up()?;
    raise_nofile()?;
    hosts_file(Path::new("/etc/hosts"))?;
    tracing::info!("init: machine ready");
    Ok(())
}

/// Flush filesystems and power the machine off. Returns only if the kernel
/// refused (no CAP_SYS_BOOT): the caller then exits with a status.
pub fn power_off() -> io::Error {
    tracing::info!("init: sync and power off");
    // SAFETY: sync and reboot take no pointers; reboot only returns on failure.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    io::Error::last_os_error()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_file_gains_sandbox_localdomain_once() {
        let p = std::env::temp_dir().join(format!("rapid-hosts-{}", std::process::id()));
        std::fs::write(&p, "127.0.0.1 localhost\n::1 localhost").unwrap();
        hosts_file(&p).unwrap();
        hosts_file(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.matches("sandbox.localdomain").count(), 1, "{text}");
        assert!(text.starts_with("127.0.0.1 localhost\n::1 localhost\n"));
        let _ = std::fs::remove_file(&p);
    }
}

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

/// Load kernel modules (uncompressed `.ko` files) in the given order; one
/// already loaded is fine.
fn load_modules(paths: &[std::path::PathBuf]) -> Result<(), InitError> {
    for p in paths {
        let f = std::fs::File::open(p).map_err(|e| InitError {
            step: format!("open module {}", p.display()),
            source: e,
        })?;
        let params = cstr("");
        // SAFETY: a valid fd and a NUL-terminated (empty) parameter string.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_finit_module,
                std::os::fd::AsRawFd::as_raw_fd(&f),
                params.as_ptr(),
                0,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(InitError {
                    step: format!("load module {}", p.display()),
                    source: e,
                });
            }
        }
        tracing::info!(module = %p.display(), "init: module loaded");
    }
    Ok(())
}

/// `IFACE=A.B.C.D/PREFIX`: wait (up to 5 s) for the interface to appear,
/// give it the address and bring it up.
fn configure_net(spec: &str) -> Result<(), InitError> {
    let bad = |why: &str| InitError {
        step: format!("network {spec}"),
        source: io::Error::new(io::ErrorKind::InvalidInput, why.to_owned()),
    };
    let (iface, cidr) = spec
        .split_once('=')
        .ok_or_else(|| bad("expected IFACE=ADDR/PREFIX"))?;
    let (addr, prefix) = cidr
        .split_once('/')
        .ok_or_else(|| bad("expected ADDR/PREFIX"))?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| bad("not an IPv4 address"))?;
    let prefix: u32 = prefix
        .parse()
        .ok()
        .filter(|p| *p <= 32)
        .ok_or_else(|| bad("bad prefix"))?;
    if iface.is_empty() || iface.len() >= libc::IFNAMSIZ {
        return Err(bad("bad interface name"));
    }
    let until = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !Path::new(&format!("/sys/class/net/{iface}")).exists() {
        if std::time::Instant::now() > until {
            return Err(bad("the interface did not appear"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    let sockaddr = |ip: u32| {
        // SAFETY: sockaddr_in is plain data.
        let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        sa.sin_family = libc::AF_INET as libc::sa_family_t;
        sa.sin_addr.s_addr = ip.to_be();
        sa
    };
    // SAFETY: a datagram socket for interface ioctls, closed below; ifreq is
    // plain data and the name fits (checked above).
    let rc = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            -1
        } else {
            let mut req: libc::ifreq = std::mem::zeroed();
            for (i, b) in iface.bytes().enumerate() {
                req.ifr_name[i] = b as libc::c_char;
            }
            let set = |req: &mut libc::ifreq, ip: u32| {
                let sa = sockaddr(ip);
                std::ptr::copy_nonoverlapping(
                    (&sa as *const libc::sockaddr_in).cast::<u8>(),
                    &mut req.ifr_ifru as *mut _ as *mut u8,
                    std::mem::size_of::<libc::sockaddr_in>(),
                );
            };
            set(&mut req, u32::from(addr));
            let mut rc = libc::ioctl(fd, libc::SIOCSIFADDR, &req);
            if rc == 0 {
                set(&mut req, mask);
                rc = libc::ioctl(fd, libc::SIOCSIFNETMASK, &req);
            }
            if rc == 0 {
                rc = libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req);
                if rc == 0 {
                    req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
                    rc = libc::ioctl(fd, libc::SIOCSIFFLAGS, &req);
                }
            }
            libc::close(fd);
            rc
        }
    };
    check(&format!("configure {iface}"), rc)?;
    tracing::info!(iface, %addr, prefix, "init: network up");
    Ok(())
}

/// Whether rapid should act as a VM's init without being asked: PID 1 with
/// no `/proc` mounted.
pub fn auto_detect() -> bool {
    std::process::id() == 1 && !Path::new("/proc/self").exists()
}

/// What init mode sets up beyond the fixed steps.
#[derive(Debug, Clone, Default)]
pub struct Machine {
    /// Hostname.
    pub hostname: String,
    /// Kernel modules to load, in order (e.g. virtio drivers).
    pub modules: Vec<std::path::PathBuf>,
    /// `IFACE=ADDR/PREFIX` to configure.
    pub net: Option<String>,
}

/// Prepare the system: filesystems, modules, hostname, loopback, network,
/// limits, hosts file.
pub fn prepare(m: &Machine) -> Result<(), InitError> {
    let hostname = m.hostname.as_str();
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
        // A tmpfs must not hide files that are already there (a rootfs that
        // ships /tmp or /run content keeps it).
        let has_files =
            fstype == "tmpfs" && std::fs::read_dir(target).is_ok_and(|mut d| d.next().is_some());
        if has_files {
            tracing::info!(target, "init: not empty, left as it is");
            continue;
        }
        mount(fstype, target, flags, data)?;
    }
    load_modules(&m.modules)?;
    set_hostname(hostname)?;
    loopback_up()?;
    if let Some(net) = &m.net {
        configure_net(net)?;
    }
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

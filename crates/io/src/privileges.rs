//! Dropping root: `[server] user` / `[server] group`.
//!
//! leased starts as root because it binds UDP port 67 on named interfaces and opens
//! `AF_PACKET` sockets. Once those sockets are bound and its files are open, it becomes the
//! configured user and group and keeps only `CAP_NET_RAW`, which the ARP and ICMP conflict
//! checks, the rogue-server probe and the no-address reply path need for sockets opened while
//! serving. A remote bug in packet or HTTP parsing then runs as an unprivileged user that can
//! only open raw sockets.
//!
//! Linux keeps credentials per thread. `setresuid` (through glibc) changes every thread of the
//! process, but capabilities and `PR_SET_KEEPCAPS` belong to the calling thread: the thread
//! that drops keeps `CAP_NET_RAW`, every other thread (the tokio workers, the commit thread)
//! loses every capability. Raw sockets are therefore opened through [`socket`], which runs the
//! `socket(2)` call on a helper thread started by the dropping thread (so it inherits exactly
//! its capabilities) and hands the descriptor back: descriptors are process-wide.

use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::sync::mpsc;

use anyhow::{Context, anyhow, bail};
use caps::{CapSet, Capability, CapsHashSet};
use leased_config::RunAs;
use nix::unistd::{Gid, Uid};
use socket2::{Domain, Protocol, Socket, Type};

/// The capabilities `leased serve` keeps: raw sockets opened while serving (ARP and ICMP
/// conflict checks, the rogue-server probe). Reloads never rebind port 67 (interfaces change
/// only with a restart), so `CAP_NET_BIND_SERVICE` is not kept.
pub const SERVE_CAPS: &[Capability] = &[Capability::CAP_NET_RAW];

/// The capabilities `leased relay` keeps: none. It opens every socket it uses at start.
pub const RELAY_CAPS: &[Capability] = &[];

/// A job for the helper thread.
type Job = Box<dyn FnOnce() + Send>;

/// The helper thread that holds the kept capabilities, once root has been dropped.
static HELPER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();

/// Opens a socket that may need `CAP_NET_RAW` (`AF_PACKET`, `SOCK_RAW`). Close-on-exec.
///
/// Before the drop (or when leased never drops) it is a plain `socket(2)` on this thread.
/// After it, the call runs on the helper thread, the only thread besides the dropping one that
/// still has `CAP_NET_RAW`; the caller blocks for the few microseconds that takes.
pub(crate) fn socket(domain: Domain, ty: Type, protocol: Option<Protocol>) -> io::Result<Socket> {
    let Some(helper) = HELPER.get() else {
        return Socket::new(domain, ty, protocol);
    };
    let (tx, rx) = mpsc::sync_channel(1);
    helper
        .send(Box::new(move || {
            // The caller may have given up; the socket then closes here.
            let _ = tx.send(Socket::new(domain, ty, protocol));
        }))
        .map_err(|_| io::Error::other("the privileged helper thread has stopped"))?;
    rx.recv()
        .map_err(|_| io::Error::other("the privileged helper thread has stopped"))?
}

fn cap_set(keep: &[Capability]) -> CapsHashSet {
    keep.iter().copied().collect()
}

/// Becomes `run_as` for good, keeping only `keep` (on this thread and the helper thread it
/// starts; every other thread keeps none). Call it on the thread that will run the signal loop,
/// after every socket is bound and every file is open.
///
/// Does nothing when the process already runs as that user and group (not started as root, or
/// restarted as the user by a service manager); fails when it runs as another non-root user.
pub(crate) fn drop_to(run_as: &RunAs, keep: &[Capability]) -> anyhow::Result<()> {
    let (euid, egid) = (Uid::effective(), Gid::effective());
    if euid.as_raw() == run_as.uid && egid.as_raw() == run_as.gid {
        tracing::info!(user = %run_as.user, "already running as user {}", run_as.user);
        return Ok(());
    }
    if !euid.is_root() {
        bail!(
            "cannot switch to user {} (server.user): leased runs as uid {euid}, not root",
            run_as.user
        );
    }
    let keep_set = cap_set(keep);
    // The bounding set limits what an exec could ever regain; drop everything else from it
    // while this thread still has CAP_SETPCAP.
    for cap in caps::runtime::thread_all_supported() {
        if !keep_set.contains(&cap) && caps::has_cap(None, CapSet::Bounding, cap).unwrap_or(false) {
            caps::drop(None, CapSet::Bounding, cap)
                .map_err(|e| anyhow!("cannot drop {cap} from the bounding set: {e}"))?;
        }
    }
    // Keep the permitted set of this thread across the uid change (cleared again below).
    caps::securebits::set_keepcaps(true).map_err(|e| anyhow!("PR_SET_KEEPCAPS: {e}"))?;
    let gid = Gid::from_raw(run_as.gid);
    let uid = Uid::from_raw(run_as.uid);
    nix::unistd::setgroups(&[gid]).context("setgroups")?;
    nix::unistd::setresgid(gid, gid, gid).context("setresgid")?;
    nix::unistd::setresuid(uid, uid, uid).context("setresuid")?;
    // Effective first (it must stay within the permitted set), then permitted; nothing
    // inheritable, nothing ambient: leased runs no programs.
    caps::set(None, CapSet::Effective, &keep_set)
        .map_err(|e| anyhow!("cannot keep {keep:?} in the effective set: {e}"))?;
    caps::set(None, CapSet::Permitted, &keep_set)
        .map_err(|e| anyhow!("cannot reduce the permitted set to {keep:?}: {e}"))?;
    caps::clear(None, CapSet::Inheritable).map_err(|e| anyhow!("inheritable set: {e}"))?;
    if caps::runtime::ambient_set_supported().is_ok() {
        caps::clear(None, CapSet::Ambient).map_err(|e| anyhow!("ambient set: {e}"))?;
    }
    caps::securebits::set_keepcaps(false).map_err(|e| anyhow!("PR_SET_KEEPCAPS: {e}"))?;

    // Never trust a drop without checking it: root must be gone for good.
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok()
        || nix::unistd::setgid(Gid::from_raw(0)).is_ok()
    {
        bail!(
            "dropped to user {} but could become root again",
            run_as.user
        );
    }
    let permitted = caps::read(None, CapSet::Permitted).map_err(|e| anyhow!("capget: {e}"))?;
    if permitted != keep_set {
        bail!("the permitted capabilities are {permitted:?}, expected {keep:?}");
    }
    if !keep.is_empty() {
        start_helper()?;
    }
    tracing::info!(
        user = %run_as.user, uid = run_as.uid, group = %run_as.group, gid = run_as.gid,
        kept = ?keep,
        "dropped root: running as {}:{}", run_as.user, run_as.group
    );
    Ok(())
}

/// Starts the helper thread from this (dropping) thread, so it inherits the kept capabilities.
fn start_helper() -> anyhow::Result<()> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("leased-caps".into())
        .spawn(move || {
            for job in rx {
                job();
            }
        })
        .context("cannot start the privileged helper thread")?;
    HELPER
        .set(tx)
        .map_err(|_| anyhow!("the privileged helper thread runs already"))
}

/// How many entries [`hand_over_tree`] looks at, at most (an outbox holds a handful).
const HAND_OVER_MAX: usize = 10_000;

/// Before the drop: when the user owns `dir` (the operator made it theirs), the files leased
/// itself created there while still root (a journal from a first start, the outbox's
/// per-destination folders) become the user's too, so the dropped server can keep writing
/// them. Symlinks are neither followed nor changed; a directory the user does not own is left
/// alone (then [`require_writable`] names the fix).
pub(crate) fn hand_over_tree(dir: &Path, run_as: &RunAs) {
    if !owned_by(dir, run_as) {
        return;
    }
    let mut stack = vec![(dir.to_path_buf(), 0u8)];
    let mut seen = 0usize;
    while let Some((d, depth)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            seen += 1;
            if seen > HAND_OVER_MAX {
                return;
            }
            let path = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                continue;
            }
            hand_over(&path, &meta, run_as);
            if meta.is_dir() && depth < 3 {
                stack.push((path, depth + 1));
            }
        }
    }
}

/// [`hand_over_tree`] for single files in `dir` (the journal and its history beside it).
pub(crate) fn hand_over_files(dir: &Path, files: &[std::path::PathBuf], run_as: &RunAs) {
    if !owned_by(dir, run_as) {
        return;
    }
    for f in files {
        if let Ok(meta) = std::fs::symlink_metadata(f)
            && !meta.file_type().is_symlink()
        {
            hand_over(f, &meta, run_as);
        }
    }
}

fn owned_by(dir: &Path, run_as: &RunAs) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir() && m.uid() == run_as.uid)
}

fn hand_over(path: &Path, meta: &std::fs::Metadata, run_as: &RunAs) {
    use std::os::unix::fs::MetadataExt as _;
    if meta.uid() == run_as.uid && meta.gid() == run_as.gid {
        return;
    }
    // lchown: a link swapped in meanwhile is changed itself, never its target.
    if let Err(e) = std::os::unix::fs::lchown(path, Some(run_as.uid), Some(run_as.gid)) {
        tracing::warn!(path = %path.display(), error = %e, "cannot give the file to {}", run_as.user);
    }
}

/// After the drop: fails unless the user can create and rename files in `dir` (the store's
/// directory: compaction and the history file; the outbox), naming the fix.
pub(crate) fn require_writable(dir: &Path, what: &str, run_as: &RunAs) -> anyhow::Result<()> {
    use nix::unistd::AccessFlags;
    nix::unistd::access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|e| {
        anyhow!(
            "{what} {} is not writable by user {} ({e}); leased creates and renames files \
             there: `chown {}:{} {}`",
            dir.display(),
            run_as.user,
            run_as.user,
            run_as.group,
            dir.display()
        )
    })
}

/// [`require_writable`] for `dir` and every directory directly in it (an outbox's
/// per-destination folders).
pub(crate) fn require_writable_tree(dir: &Path, what: &str, run_as: &RunAs) -> anyhow::Result<()> {
    require_writable(dir, what, run_as)?;
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let path = e.path();
            if std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir()) {
                require_writable(&path, what, run_as)?;
            }
        }
    }
    Ok(())
}

/// The directory a file lives in (`.` for a bare name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn socket_without_a_drop_opens_here() {
        let s = socket(Domain::IPV4, Type::DGRAM, None).unwrap();
        assert!(s.local_addr().is_ok());
    }
}

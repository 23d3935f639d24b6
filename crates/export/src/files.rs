//! The exporter's files: who may read them, and how they are created and replaced.
//!
//! Why: the outbox and the binding table name every subscriber's MAC and address, so they are
//! created owner-only, an existing file that is wider is narrowed (never widened), and the
//! temporaries of an atomic replace are created fresh (`O_CREAT|O_EXCL`, which never follows
//! a symlink) instead of opened wherever a name points.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Modes of the exporter's files and directories. A deployment that lets a group read them
/// (e.g. a `[server] group`) passes a wider one; the default is [`Perms::PRIVATE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Perms {
    /// Mode of every file created (`log`, `ack`, `status.json`, the binding table, their
    /// temporaries).
    pub file: u32,
    /// Mode of every directory created.
    pub dir: u32,
}

impl Perms {
    /// Owner only: `0600` files, `0700` directories.
    pub const PRIVATE: Perms = Perms {
        file: 0o600,
        dir: 0o700,
    };
}

impl Perms {
    /// Readable by the service's group too (`0640` files, `0750` directories), for
    /// `[server] group`: the operator's tools in that group read the outbox.
    pub const GROUP: Perms = Perms {
        file: 0o640,
        dir: 0o750,
    };

    /// [`Perms::GROUP`] when the server runs with a configured group, else [`Perms::PRIVATE`].
    pub fn for_group(group: bool) -> Perms {
        if group { Self::GROUP } else { Self::PRIVATE }
    }
}

impl Default for Perms {
    fn default() -> Self {
        Self::PRIVATE
    }
}

/// Creates `dir` and its missing parents with `perms.dir` (existing ones are left as they are:
/// they may be the operator's).
pub(crate) fn create_dir_all(dir: &Path, perms: Perms) -> io::Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(perms.dir)
        .create(dir)
}

/// Narrows `file`'s mode to `perms.file` when it allows more (a file made by an older version
/// or by hand); never adds a permission.
pub(crate) fn narrow(file: &File, path: &Path, perms: Perms) -> io::Result<()> {
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    let allowed = mode & perms.file;
    if allowed != mode {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{mode:04o}"),
            now = format!("{allowed:04o}"),
            "export: a file was readable by more than its owner; narrowed"
        );
        file.set_permissions(Permissions::from_mode(allowed))?;
    }
    Ok(())
}

/// Opens (creating with `perms.file`) `path` for reading and appending, narrowing a wider mode.
pub(crate) fn open_append(path: &Path, perms: Perms) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .mode(perms.file)
        .open(path)?;
    narrow(&file, path, perms)?;
    Ok(file)
}

/// Creates `path` anew for writing with `perms.file`: a leftover (a crash's temporary, or a
/// symlink someone planted) is removed first, and `create_new` refuses to follow whatever
/// appears in its place.
pub(crate) fn create_fresh(path: &Path, perms: Perms) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(perms.file)
        .open(path)
}

/// Fsyncs a directory, so that a rename or a creation in it survives power loss.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Replaces `dir/name` with `bytes` atomically (write a fresh `name.tmp`, fsync, rename, fsync
/// the directory); the result has `perms.file`.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8], perms: Perms) -> io::Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = create_fresh(&tmp, perms)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(name))?;
    sync_dir(dir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn created_private_and_narrowed_never_widened() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("a/b");
        create_dir_all(&sub, Perms::PRIVATE).unwrap();
        assert_eq!(mode(&sub), 0o700);
        let p = sub.join("log");
        drop(open_append(&p, Perms::PRIVATE).unwrap());
        assert_eq!(mode(&p), 0o600);
        std::fs::set_permissions(&p, Permissions::from_mode(0o644)).unwrap();
        drop(open_append(&p, Perms::PRIVATE).unwrap());
        assert_eq!(mode(&p), 0o600, "narrowed");
        std::fs::set_permissions(&p, Permissions::from_mode(0o400)).unwrap();
        drop(OpenOptions::new().read(true).open(&p).unwrap());
        narrow(&File::open(&p).unwrap(), &p, Perms::PRIVATE).unwrap();
        assert_eq!(mode(&p), 0o400, "never widened");
        // A group-readable deployment passes its own mode.
        let g = Perms {
            file: 0o640,
            dir: 0o750,
        };
        write_atomic(&sub, "status.json", b"{}", g).unwrap();
        assert_eq!(mode(&sub.join("status.json")), 0o640);
    }

    #[test]
    fn a_planted_temporary_symlink_is_not_followed() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        std::os::unix::fs::symlink(&victim, d.path().join("ack.tmp")).unwrap();
        write_atomic(d.path(), "ack", b"new", Perms::PRIVATE).unwrap();
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(std::fs::read(d.path().join("ack")).unwrap(), b"new");
        assert_eq!(mode(&d.path().join("ack")), 0o600);
        assert!(!d.path().join("ack.tmp").exists());
    }
}

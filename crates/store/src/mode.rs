//! The permission bits of the files the store writes (journal, history, their temporary
//! files). They hold every subscriber's MAC, host name and Option 82 identity, so by default
//! only the owner may read them; an operator who runs a reader in the server's group can let
//! that group read them too.

use std::fs::{File, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Permission bits for the store's files: owner read/write, optionally group read. Nothing
/// else can be expressed, so no configuration can make lease data world-readable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(u32);

impl FileMode {
    /// `0600`: only the server's user (the default).
    pub const PRIVATE: FileMode = FileMode(0o600);
    /// `0640`: the server's group may read too (for a `[server] group` of readers).
    pub const GROUP_READ: FileMode = FileMode(0o640);

    /// [`FileMode::GROUP_READ`] when a group of readers is configured, else
    /// [`FileMode::PRIVATE`].
    pub fn for_group(group_may_read: bool) -> Self {
        if group_may_read {
            Self::GROUP_READ
        } else {
            Self::PRIVATE
        }
    }

    /// The bits, as `chmod` takes them.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// Sets the creation mode on `opts` (narrowed further by the umask; see
    /// [`FileMode::apply`]).
    pub(crate) fn on_create(self, opts: &mut std::fs::OpenOptions) {
        opts.mode(self.0);
    }

    /// Gives the open `file` exactly this mode: narrows a wider one left by an older version,
    /// an operator or a restore (saying so), and undoes a umask that removed the group bit.
    /// A file that cannot be changed (another owner) is only warned about: refusing to serve
    /// would not make it any less readable.
    pub(crate) fn apply(self, file: &File, path: &Path) {
        let current = match file.metadata() {
            Ok(m) => m.permissions().mode() & 0o7777,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read the file's mode");
                return;
            }
        };
        if current == self.0 {
            return;
        }
        match file.set_permissions(Permissions::from_mode(self.0)) {
            Ok(()) if current & !self.0 != 0 => tracing::warn!(
                path = %path.display(),
                was = %format!("{current:04o}"),
                now = %format!("{:04o}", self.0),
                "lease data file was readable by more than the server: mode narrowed"
            ),
            Ok(()) => {}
            Err(e) => tracing::warn!(
                path = %path.display(),
                mode = %format!("{current:04o}"),
                wanted = %format!("{:04o}", self.0),
                error = %e,
                "cannot set the lease data file's mode",
            ),
        }
    }
}

impl Default for FileMode {
    fn default() -> Self {
        Self::PRIVATE
    }
}

/// The permission bits of the file at `path` (for tests and tools).
pub fn mode_of(path: &Path) -> io::Result<u32> {
    Ok(std::fs::metadata(path)?.permissions().mode() & 0o7777)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn apply_narrows_and_widens_to_exactly_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let f = File::create(&p).unwrap();
        f.set_permissions(Permissions::from_mode(0o666)).unwrap();
        FileMode::PRIVATE.apply(&f, &p);
        assert_eq!(mode_of(&p).unwrap(), 0o600);
        FileMode::for_group(true).apply(&f, &p);
        assert_eq!(mode_of(&p).unwrap(), 0o640);
        assert_eq!(FileMode::default(), FileMode::PRIVATE);
    }
}

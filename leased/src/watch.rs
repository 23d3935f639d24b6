//! Watching files for changes (auto-reload of the config, re-reading ISC dhcpd's files).
//!
//! Why the directory and not the file: editors and dhcpd replace files by renaming a new one
//! over the old, which ends a watch on the file itself; a watch on the directory sees the new
//! file arrive. Bursts (an editor's write + rename + chmod) are debounced into one tick.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

/// How long the files must stay quiet before a change is reported.
pub const DEBOUNCE: Duration = Duration::from_millis(300);

/// A running watch; dropping it stops watching.
pub struct FileWatch {
    _watcher: notify::RecommendedWatcher,
    rx: mpsc::UnboundedReceiver<()>,
}

impl std::fmt::Debug for FileWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FileWatch")
    }
}

/// Absolute form of `p` (relative to the working directory), for comparing event paths.
fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}

impl FileWatch {
    /// Watches the directories of `files` for changes to those files.
    pub fn new(files: &[PathBuf]) -> anyhow::Result<FileWatch> {
        let targets: BTreeSet<PathBuf> = files.iter().map(|f| absolute(f)).collect();
        let dirs: BTreeSet<PathBuf> = targets
            .iter()
            .filter_map(|f| f.parent().map(Path::to_path_buf))
            .collect();
        let (tx, rx) = mpsc::unbounded_channel();
        let wanted = targets.clone();
        let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
            let Ok(ev) = ev else { return };
            if ev.kind.is_access() {
                return;
            }
            if ev.paths.iter().any(|p| wanted.contains(p)) {
                let _ = tx.send(());
            }
        })
        .context("cannot start a file watcher")?;
        for d in &dirs {
            watcher
                .watch(d, RecursiveMode::NonRecursive)
                .with_context(|| format!("cannot watch {}", d.display()))?;
        }
        Ok(FileWatch {
            _watcher: watcher,
            rx,
        })
    }

    /// Waits for the next change, then for `DEBOUNCE` of quiet; `None` when the watch ended.
    pub async fn changed(&mut self) -> Option<()> {
        self.rx.recv().await?;
        loop {
            match tokio::time::timeout(DEBOUNCE, self.rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return None,
                Err(_) => return Some(()),
            }
        }
    }
}

/// The auto-reload sidecar: on every change of `path`, reload through the server's own path
/// (validate; swap, or keep the old plan and log every error).
pub fn auto_reload(
    path: PathBuf,
    shared: std::sync::Arc<leased_io::SharedState>,
    shutdown: leased_io::Shutdown,
) -> anyhow::Result<leased_io::Sidecar> {
    let mut watch = FileWatch::new(std::slice::from_ref(&path))?;
    tracing::info!(path = %path.display(), "auto-reload: watching the config file");
    Ok(Box::pin(async move {
        let down = shutdown.wait();
        tokio::pin!(down);
        loop {
            tokio::select! {
                c = watch.changed() => {
                    if c.is_none() { break; }
                    tracing::info!(path = %path.display(), "auto-reload: the config file changed");
                    match shared.reload().await {
                        Some(leased_io::ReloadOutcome::Kept(errors)) => tracing::error!(
                            errors = errors.len(),
                            "auto-reload: the changed file is invalid; still serving the previous configuration"
                        ),
                        Some(_) => {}
                        None => break,
                    }
                }
                () = &mut down => break,
            }
        }
        Ok(())
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sees_a_replaced_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("a.toml");
        std::fs::write(&f, "1").unwrap();
        let mut w = FileWatch::new(std::slice::from_ref(&f)).unwrap();
        // Another file in the directory does not count.
        std::fs::write(dir.path().join("other"), "x").unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(700), w.changed())
                .await
                .is_err()
        );
        // Write a temp file and rename it over, as editors do: one tick.
        let tmp = dir.path().join(".a.tmp");
        std::fs::write(&tmp, "2").unwrap();
        std::fs::rename(&tmp, &f).unwrap();
        tokio::time::timeout(Duration::from_secs(5), w.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(700), w.changed())
                .await
                .is_err()
        );
    }
}

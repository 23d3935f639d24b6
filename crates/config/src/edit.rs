//! Editing the config file's reservations: the one implementation behind the HTTP API's
//! `/reservations` writes and `leased manage add/remove`.
//!
//! Why edit the file rather than keep such reservations elsewhere: the config file stays the
//! one source of truth an operator reads and versions. TOML files are edited with `toml_edit`,
//! which keeps comments, blank lines and key order; JSON files are rewritten pretty-printed
//! (JSON has no comments to keep). A candidate text is validated with [`crate::load`],
//! the loader `serve`, reload and `leased check` use, before it atomically replaces the file.
//!
//! Several writers may edit one file at once (the HTTP API of a running server, any number of
//! `leased manage` runs): each holds [`EditLock`] from its read to its rename, so none works
//! on a text another has already replaced and no edit is lost. A symlinked config is edited
//! through the link: the new file is written beside the real one and the link stays.
//!
//! An edit carries a reservation exactly as the config file spells it (`{"mac": "...", "ip":
//! "...", "note": "..."}` or any other reservation key), so the loader, not this module,
//! decides what is valid, and its `file:line:col` errors come back in [`EditError::errors`].

use std::fmt;
use std::fs::{File, TryLockError};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::model::Config;

use serde_json::{Map, Value};

/// What kind of failure an [`EditError`] is (the API maps it to an HTTP status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EditErrorKind {
    /// The edit itself is malformed (no `ip`, not an address).
    BadRequest,
    /// No reservation for that address.
    NotFound,
    /// The address is already reserved.
    Conflict,
    /// The edited file would not validate; see [`EditError::errors`].
    Invalid,
    /// The file could not be read, parsed or replaced.
    Internal,
}

/// Why an edit was not made. The file is untouched whenever one is returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EditError {
    /// The kind of failure.
    pub kind: EditErrorKind,
    /// What went wrong, for people.
    pub message: String,
    /// Every validation error as `file:line:col: key: message` (for `Invalid`).
    pub errors: Vec<String>,
}

impl EditError {
    fn new(kind: EditErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            errors: Vec::new(),
        }
    }
    /// See [`EditErrorKind::BadRequest`].
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(EditErrorKind::BadRequest, message)
    }
    /// See [`EditErrorKind::NotFound`].
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(EditErrorKind::NotFound, message)
    }
    /// See [`EditErrorKind::Conflict`].
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(EditErrorKind::Conflict, message)
    }
    /// See [`EditErrorKind::Invalid`].
    pub fn invalid(message: impl Into<String>, errors: Vec<String>) -> Self {
        let mut e = Self::new(EditErrorKind::Invalid, message);
        e.errors = errors;
        e
    }
    /// See [`EditErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(EditErrorKind::Internal, message)
    }
}

impl fmt::Display for EditError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        for e in &self.errors {
            write!(f, "\n  {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for EditError {}

/// Reads `path`, applies `edit` (TOML keeping layout, or JSON), validates the result with the
/// server's loader and replaces the file atomically, all under the edit lock ([`EditLock`]).
/// Blocking: file IO, fsync, and waiting for another writer.
pub fn apply(path: &Path, edit: &Edit) -> Result<(), EditError> {
    edit_locked(path, |_| Ok(vec![edit.clone()])).map(|_| ())
}

/// Like [`apply`], for edits that depend on what the file holds now: `plan` gets the current
/// configuration (read under the lock, so no other writer changes it in between) and returns
/// the edits, applied in order and written at once. Returns those edits.
pub fn apply_planned(
    path: &Path,
    plan: impl FnOnce(&Config) -> Result<Vec<Edit>, EditError>,
) -> Result<Vec<Edit>, EditError> {
    edit_locked(path, |target| {
        let current = crate::load::load(target).map_err(|errors| {
            EditError::invalid(
                format!("{} does not load as it is", path.display()),
                errors.0.iter().map(ToString::to_string).collect(),
            )
        })?;
        plan(&current)
    })
}

/// Under the lock: the edits `plan` returns for the real file, applied to its text, validated
/// and written at once.
fn edit_locked(
    path: &Path,
    plan: impl FnOnce(&Path) -> Result<Vec<Edit>, EditError>,
) -> Result<Vec<Edit>, EditError> {
    let target = real_path(path)?;
    let _lock = EditLock::acquire(&target)?;
    let edits = plan(&target)?;
    let mut text = std::fs::read_to_string(&target)
        .map_err(|e| EditError::internal(format!("cannot read {}: {e}", target.display())))?;
    let json = is_json(&target, &text);
    for edit in &edits {
        text = if json {
            edit_json(&text, edit)?
        } else {
            edit_toml(&text, edit)?
        };
    }
    replace(&target, path, &text)?;
    Ok(edits)
}

/// The file `path` names once every symlink is followed: edits are written beside it and
/// renamed over it, so a symlinked config keeps its link and the change lands in the target.
fn real_path(path: &Path) -> Result<PathBuf, EditError> {
    std::fs::canonicalize(path)
        .map_err(|e| EditError::internal(format!("cannot resolve {}: {e}", path.display())))
}

/// How long an edit waits for another writer before giving up with an error.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The advisory lock every reservation edit holds across its read, edit, validate and rename:
/// an exclusive `flock` on `.<name>.lock` beside the real config file. The HTTP API of each
/// running server and every `leased manage` take the same lock, so no edit is lost.
///
/// Why a sibling file and not the config itself: an edit renames a new file over the config,
/// so a lock on the config's inode would guard a file that is no longer the config, and a
/// writer that opened the new one would not wait for it. The lock file is never replaced or
/// removed, so every writer locks the same inode. It is created `0600` and given the config's
/// owner, so the account that runs the server (and root) can lock it and nobody else can hold
/// edits up.
pub struct EditLock {
    _file: File,
}

impl EditLock {
    /// Waits (bounded by [`LOCK_WAIT`]) for the lock on the config file `target` (a real path,
    /// no symlink).
    pub fn acquire(target: &Path) -> Result<Self, EditError> {
        let lock_path = lock_path(target);
        let file = open_lock_file(&lock_path, target).map_err(|e| {
            EditError::internal(format!(
                "cannot open the edit lock {}: {e}",
                lock_path.display()
            ))
        })?;
        let deadline = Instant::now() + LOCK_WAIT;
        let mut pause = Duration::from_millis(1);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self { _file: file }),
                Err(TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(EditError::internal(format!(
                        "{} is being edited by another process (lock {} held for over {}s); \
                         try again",
                        target.display(),
                        lock_path.display(),
                        LOCK_WAIT.as_secs()
                    )));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(EditError::internal(format!(
                        "cannot lock {}: {e}",
                        lock_path.display()
                    )));
                }
            }
        }
    }
}

/// `.<name>.lock` in the directory of `target`.
fn lock_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    parent(target).join(format!(".{name}.lock"))
}

fn parent(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Opens (creating when missing) the lock file without following a symlink; a new one gets
/// the config file's owner and group.
fn open_lock_file(lock_path: &Path, target: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
    let open = |create: bool| {
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(create)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(lock_path)
    };
    match open(true) {
        Ok(file) => {
            if let Ok(meta) = std::fs::metadata(target) {
                // Only root can give a file away; otherwise it is ours already.
                let _ = std::os::unix::fs::fchown(&file, Some(meta.uid()), Some(meta.gid()));
            }
            Ok(file)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => open(false),
        Err(e) => Err(e),
    }
}

/// One change to the `reservations` list.
#[derive(Debug, Clone)]
pub enum Edit {
    /// Append a reservation (its `ip` must not be reserved yet).
    Create(Map<String, Value>),
    /// Replace the reservation for this address with the given one.
    Replace(Ipv4Addr, Map<String, Value>),
    /// Remove the reservation for this address.
    Delete(Ipv4Addr),
}

impl Edit {
    /// The address the edit is about.
    pub fn ip(&self) -> Result<Ipv4Addr, EditError> {
        match self {
            Edit::Create(body) => body_ip(body)?.ok_or_else(|| {
                EditError::bad_request("the reservation needs an \"ip\" (an IPv4 address)")
            }),
            Edit::Replace(ip, _) | Edit::Delete(ip) => Ok(*ip),
        }
    }
}

/// The `ip` of a body, if present; an error when it is not an IPv4 address.
pub fn body_ip(body: &Map<String, Value>) -> Result<Option<Ipv4Addr>, EditError> {
    match body.get("ip") {
        None => Ok(None),
        Some(Value::String(s)) => {
            s.trim().parse().map(Some).map_err(|_| {
                EditError::bad_request(format!("\"ip\": {s:?} is not an IPv4 address"))
            })
        }
        Some(other) => Err(EditError::bad_request(format!(
            "\"ip\": expected an address string, got {other}"
        ))),
    }
}

fn entry_ip_toml(t: &dyn toml_edit::TableLike) -> Option<Ipv4Addr> {
    t.get("ip")?.as_str()?.trim().parse().ok()
}

fn json_to_toml(v: &Value) -> Option<toml_edit::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => (*b).into(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.into(),
            (None, Some(f)) => f.into(),
            (None, None) => return None,
        },
        Value::String(s) => s.as_str().into(),
        Value::Array(a) => {
            let mut arr = toml_edit::Array::new();
            for x in a {
                if let Some(x) = json_to_toml(x) {
                    arr.push(x);
                }
            }
            toml_edit::Value::Array(arr)
        }
        Value::Object(o) => {
            let mut t = toml_edit::InlineTable::new();
            for (k, x) in o {
                if let Some(x) = json_to_toml(x) {
                    t.insert(k, x);
                }
            }
            toml_edit::Value::InlineTable(t)
        }
    })
}

/// Keys in the order a person writes a reservation: who, where, then the rest as given
/// (alphabetical: JSON objects carry no order here).
const KEY_ORDER: [&str; 4] = ["mac", "client_id", "ip", "hostname"];

fn ordered(body: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    let rank = |k: &str| {
        KEY_ORDER
            .iter()
            .position(|x| *x == k)
            .unwrap_or(KEY_ORDER.len())
    };
    let mut entries: Vec<(&String, &Value)> = body.iter().collect();
    entries.sort_by_key(|(k, _)| rank(k));
    entries.into_iter()
}

fn body_table(body: &Map<String, Value>) -> toml_edit::Table {
    let mut t = toml_edit::Table::new();
    for (k, v) in ordered(body) {
        if let Some(v) = json_to_toml(v) {
            t.insert(k, toml_edit::Item::Value(v));
        }
    }
    t
}

fn body_inline(body: &Map<String, Value>) -> toml_edit::InlineTable {
    let mut t = toml_edit::InlineTable::new();
    for (k, v) in ordered(body) {
        if let Some(v) = json_to_toml(v) {
            t.insert(k, v);
        }
    }
    t
}

fn not_found(ip: Ipv4Addr) -> EditError {
    EditError::not_found(format!("no reservation for {ip}"))
}

fn conflict(ip: Ipv4Addr) -> EditError {
    EditError::conflict(format!(
        "{ip} is already reserved; PUT /reservations/{ip} to change it"
    ))
}

/// Applies `edit` to TOML `text`, keeping comments and layout.
pub fn edit_toml(text: &str, edit: &Edit) -> Result<String, EditError> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| EditError::internal(format!("the config file does not parse: {e}")))?;
    let ip = edit.ip()?;
    if doc.get("reservations").is_none() {
        if let Edit::Create(body) = edit {
            let mut aot = toml_edit::ArrayOfTables::new();
            aot.push(body_table(body));
            doc.insert("reservations", toml_edit::Item::ArrayOfTables(aot));
            return Ok(doc.to_string());
        }
        return Err(not_found(ip));
    }
    let item = doc
        .get_mut("reservations")
        .ok_or_else(|| EditError::internal("reservations vanished"))?;
    match item {
        toml_edit::Item::ArrayOfTables(aot) => {
            let idx = aot.iter().position(|t| entry_ip_toml(t) == Some(ip));
            match (edit, idx) {
                (Edit::Create(_), Some(_)) => return Err(conflict(ip)),
                (Edit::Create(body), None) => aot.push(body_table(body)),
                (Edit::Replace(_, body), Some(i)) => {
                    let t = aot
                        .get_mut(i)
                        .ok_or_else(|| EditError::internal("reservation index"))?;
                    let decor = t.decor().clone();
                    // Nested tables ([reservations.options]) are replaced by what the body says.
                    *t = body_table(body);
                    *t.decor_mut() = decor;
                }
                (Edit::Delete(_), Some(i)) => {
                    aot.remove(i);
                }
                (_, None) => return Err(not_found(ip)),
            }
        }
        toml_edit::Item::Value(toml_edit::Value::Array(arr)) => {
            let idx = arr.iter().position(|v| {
                v.as_inline_table()
                    .and_then(|t| entry_ip_toml(t))
                    .is_some_and(|x| x == ip)
            });
            match (edit, idx) {
                (Edit::Create(_), Some(_)) => return Err(conflict(ip)),
                (Edit::Create(body), None) => arr.push(body_inline(body)),
                (Edit::Replace(_, body), Some(i)) => {
                    arr.replace(i, body_inline(body));
                }
                (Edit::Delete(_), Some(i)) => {
                    arr.remove(i);
                }
                (_, None) => return Err(not_found(ip)),
            }
        }
        _ => {
            return Err(EditError::internal(
                "`reservations` in the config file is not a list of tables",
            ));
        }
    }
    Ok(doc.to_string())
}

/// Applies `edit` to JSON `text` (rewritten pretty-printed).
pub fn edit_json(text: &str, edit: &Edit) -> Result<String, EditError> {
    let mut doc: Value = serde_json::from_str(text)
        .map_err(|e| EditError::internal(format!("the config file does not parse: {e}")))?;
    let ip = edit.ip()?;
    let root = doc
        .as_object_mut()
        .ok_or_else(|| EditError::internal("the config file is not a JSON object"))?;
    let list = root
        .entry("reservations")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| EditError::internal("`reservations` is not a list"))?;
    let idx = list.iter().position(|v| {
        v.get("ip")
            .and_then(Value::as_str)
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            == Some(ip)
    });
    match (edit, idx) {
        (Edit::Create(_), Some(_)) => return Err(conflict(ip)),
        (Edit::Create(body), None) => list.push(Value::Object(body.clone())),
        (Edit::Replace(_, body), Some(i)) => {
            if let Some(slot) = list.get_mut(i) {
                *slot = Value::Object(body.clone());
            }
        }
        (Edit::Delete(_), Some(i)) => {
            list.remove(i);
        }
        (_, None) => return Err(not_found(ip)),
    }
    let mut out = serde_json::to_string_pretty(&doc)
        .map_err(|e| EditError::internal(format!("cannot write JSON: {e}")))?;
    out.push('\n');
    Ok(out)
}

/// True when the file is read as JSON by the loader (by extension or a leading `{`).
pub fn is_json(path: &Path, text: &str) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        || text.trim_start().starts_with('{')
}

/// Validates `candidate` as the new content of `target` (a real path) with the server's
/// loader, then replaces it atomically: a temp file with an unpredictable name created
/// exclusively in the same directory, given the old file's mode and owner, fsynced, renamed
/// over `target`, directory fsynced. Invalid content leaves the file untouched and comes back
/// with every error, naming the file as `shown` (the path the caller gave). The caller holds
/// the [`EditLock`].
fn replace(target: &Path, shown: &Path, candidate: &str) -> Result<(), EditError> {
    use std::os::unix::fs::MetadataExt as _;
    let dir = parent(target);
    let name = target
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    let suffix = target
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
    // tempfile creates with O_CREAT|O_EXCL under a random name: never an existing file or link.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}.edit-"))
        .suffix(&suffix)
        .tempfile_in(&dir)
        .map_err(|e| {
            EditError::internal(format!("cannot create a file in {}: {e}", dir.display()))
        })?;
    tmp.write_all(candidate.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(|e| EditError::internal(format!("cannot write the new config: {e}")))?;
    if let Err(errors) = crate::load::load(tmp.path()) {
        let tmp_name = tmp.path().display().to_string();
        let real = shown.display().to_string();
        let errors = errors
            .0
            .iter()
            .map(|e| e.to_string().replace(&tmp_name, &real))
            .collect();
        return Err(EditError::invalid(
            "the change makes the configuration invalid",
            errors,
        ));
    }
    if let Ok(meta) = std::fs::metadata(target) {
        // Keep the file's mode (it may hold secrets such as API keys) and, when root edits a
        // file the server's account owns, its owner: the server must still read it on reload.
        let _ = tmp.as_file().set_permissions(meta.permissions());
        let _ = std::os::unix::fs::fchown(tmp.as_file(), Some(meta.uid()), Some(meta.gid()));
    }
    tmp.persist(target).map_err(|e| {
        EditError::internal(format!("cannot replace {}: {}", target.display(), e.error))
    })?;
    if let Ok(d) = File::open(&dir) {
        // The rename is durable only once the directory is; failing that is not worth an error.
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    const TEXT: &str = r#"# leased config
[server]
lease_time = "1h" # an hour

# the printer
[[reservations]]
mac = "02:00:00:00:00:01"
ip = "198.18.0.50"
hostname = "printer"

[[reservations]]
mac = "02:00:00:00:00:02"
ip = "198.18.0.51"
"#;

    #[test]
    fn toml_create_keeps_comments() {
        let out = edit_toml(
            TEXT,
            &Edit::Create(body(
                serde_json::json!({"mac": "02:00:00:00:00:03", "ip": "198.18.0.52", "note": "x"}),
            )),
        )
        .unwrap();
        assert!(out.starts_with(TEXT.trim_end()), "{out}");
        assert!(out.contains("# an hour"));
        assert!(
            out.contains("mac = \"02:00:00:00:00:03\"\nip = \"198.18.0.52\"\nnote = \"x\"\n"),
            "{out}"
        );
        let again = edit_toml(
            &out,
            &Edit::Create(body(
                serde_json::json!({"mac": "02:00:00:00:00:04", "ip": "198.18.0.52"}),
            )),
        );
        assert_eq!(again.unwrap_err().kind, EditErrorKind::Conflict);
    }

    #[test]
    fn toml_replace_and_delete() {
        let ip: Ipv4Addr = "198.18.0.50".parse().unwrap();
        let out = edit_toml(
            TEXT,
            &Edit::Replace(
                ip,
                body(serde_json::json!({"mac": "02:00:00:00:00:09", "ip": "198.18.0.50"})),
            ),
        )
        .unwrap();
        assert!(out.contains("# the printer\n[[reservations]]\n"), "{out}");
        assert!(out.contains("02:00:00:00:00:09"));
        assert!(!out.contains("hostname = \"printer\""));
        let out = edit_toml(&out, &Edit::Delete(ip)).unwrap();
        assert!(!out.contains("198.18.0.50"));
        assert!(out.contains("198.18.0.51"));
        let missing = edit_toml(&out, &Edit::Delete(ip)).unwrap_err();
        assert_eq!(missing.kind, EditErrorKind::NotFound);
    }

    #[test]
    fn toml_inline_array_and_absent() {
        let text = "reservations = [{ mac = \"02:00:00:00:00:01\", ip = \"198.18.0.50\" }]\n";
        let ip: Ipv4Addr = "198.18.0.50".parse().unwrap();
        let out = edit_toml(text, &Edit::Delete(ip)).unwrap();
        assert!(!out.contains("198.18.0.50"));
        let out = edit_toml(
            "[server]\n",
            &Edit::Create(body(
                serde_json::json!({"mac": "02:00:00:00:00:01", "ip": "198.18.0.9"}),
            )),
        )
        .unwrap();
        assert!(out.contains("[[reservations]]"), "{out}");
    }

    #[test]
    fn edits_through_a_symlink_under_the_lock_all_land() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        let target = real.join("leased.toml");
        std::fs::write(
            &target,
            "# keep\n[[subnets]]\nnetwork = \"198.18.0.0/24\"\npools = [\"198.18.0.100-198.18.0.200\"]\n",
        )
        .unwrap();
        let link = dir.path().join("leased.toml");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let threads: Vec<_> = (0..8u8)
            .map(|i| {
                let link = link.clone();
                std::thread::spawn(move || {
                    let b = body(serde_json::json!({
                        "mac": format!("02:00:00:00:01:{i:02x}"),
                        "ip": format!("198.18.0.{}", 10 + i),
                    }));
                    apply(&link, &Edit::Create(b))
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap().unwrap();
        }
        assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(text.starts_with("# keep\n"), "{text}");
        assert_eq!(text.matches("[[reservations]]").count(), 8, "{text}");
        let lock = real.join(".leased.toml.lock");
        let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // Planned edits see the file as it is under the lock.
        let edits = apply_planned(&link, |c| {
            let n = c
                .network
                .subnets
                .iter()
                .map(|s| s.reservations.len())
                .sum::<usize>();
            assert_eq!(n, 8);
            Ok(vec![Edit::Delete("198.18.0.10".parse().unwrap())])
        })
        .unwrap();
        assert_eq!(edits.len(), 1);
        let text = std::fs::read_to_string(&target).unwrap();
        assert!(!text.contains("198.18.0.10\""), "{text}");
        // An invalid edit leaves the file alone and names the link the caller used.
        let bad = apply(
            &link,
            &Edit::Create(body(
                serde_json::json!({"mac": "02:00:00:00:01:01", "ip": "198.18.0.99"}),
            )),
        )
        .unwrap_err();
        assert_eq!(bad.kind, EditErrorKind::Invalid, "{bad}");
        assert!(
            bad.to_string().contains(&link.display().to_string()),
            "{bad}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), text);
        // A link planted at the lock's name is not followed.
        let other = tempfile::tempdir().unwrap();
        let lock2 = other.path().join(".x.toml.lock");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &lock2).unwrap();
        std::fs::write(other.path().join("x.toml"), "").unwrap();
        assert!(EditLock::acquire(&other.path().join("x.toml")).is_err());
        assert!(!dir.path().join("elsewhere").exists());
    }

    #[test]
    fn json_edits() {
        let text = r#"{"reservations": [{"mac": "02:00:00:00:00:01", "ip": "198.18.0.50"}]}"#;
        let ip: Ipv4Addr = "198.18.0.50".parse().unwrap();
        let out = edit_json(text, &Edit::Delete(ip)).unwrap();
        assert!(!out.contains("198.18.0.50"));
        let err = edit_json(
            text,
            &Edit::Create(body(serde_json::json!({"mac": "02:00:00:00:00:02"}))),
        )
        .unwrap_err();
        assert_eq!(err.kind, EditErrorKind::BadRequest);
    }
}

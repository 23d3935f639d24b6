//! Editing the config file's reservations: the one implementation behind the HTTP API's
//! `/reservations` writes and `leased manage add/remove`.
//!
//! Why edit the file rather than keep such reservations elsewhere: the config file stays the
//! one source of truth an operator reads and versions. TOML files are edited with `toml_edit`,
//! which keeps comments, blank lines and key order; JSON files are rewritten pretty-printed
//! (JSON has no comments to keep). A candidate text is validated with [`crate::load_config`],
//! the loader `serve`, reload and `leased check` use, before it atomically replaces the file.
//!
//! An edit carries a reservation exactly as the config file spells it (`{"mac": "...", "ip":
//! "...", "note": "..."}` or any other reservation key), so the loader, not this module,
//! decides what is valid, and its `file:line:col` errors come back in [`EditError::errors`].

use std::fmt;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::Path;

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
/// server's loader and replaces the file atomically. Blocking: file IO and fsync.
pub fn apply(path: &Path, edit: &Edit) -> Result<(), EditError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EditError::internal(format!("cannot read {}: {e}", path.display())))?;
    let candidate = if is_json(path, &text) {
        edit_json(&text, edit)?
    } else {
        edit_toml(&text, edit)?
    };
    validate_and_replace(path, &candidate)
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

/// Validates `candidate` as the new content of `path` with the server's loader, then replaces
/// `path` atomically (temp file in the same directory, fsync, rename, fsync the directory).
/// Invalid content leaves `path` untouched and comes back as a 422 with every error.
pub fn validate_and_replace(path: &Path, candidate: &str) -> Result<(), EditError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map_or_else(|| "config".into(), |n| n.to_string_lossy().into_owned());
    let suffix = path
        .extension()
        .map_or_else(String::new, |e| format!(".{}", e.to_string_lossy()));
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
    if let Err(errors) = crate::load_config(tmp.path()) {
        let tmp_name = tmp.path().display().to_string();
        let real = path.display().to_string();
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
    if let Ok(meta) = std::fs::metadata(path) {
        // Keep the file's mode (it may hold secrets such as API keys).
        let _ = std::fs::set_permissions(tmp.path(), meta.permissions());
    }
    tmp.persist(path).map_err(|e| {
        EditError::internal(format!("cannot replace {}: {}", path.display(), e.error))
    })?;
    if let Ok(d) = std::fs::File::open(&dir) {
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

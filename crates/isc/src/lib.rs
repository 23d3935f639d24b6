//! Readers for ISC dhcpd's files, so leased can serve DHCPStats-style stats over an existing ISC
//! server and import its configuration and leases.
//!
//! - [`read_conf`] / [`parse_conf`]: `dhcpd.conf` (with `include`s) → [`IscConfig`]. Syntax
//!   errors are an [`IscError::Parse`] with file:line:col; unknown statements are skipped and
//!   listed in [`IscConfig::warnings`].
//! - [`read_leases`] / [`parse_leases`]: `dhcpd.leases` → [`IscLeases`], the last entry per
//!   address winning. Never fails on content: dhcpd may be appending while we read, and the
//!   DHCPStats' crashes on blank lines or a missing binding state are what we replace.
//! - [`LeaseReader`]: the same reading one statement at a time, for files too large to hold
//!   whole (a million leases); the caller keeps what it needs of each entry.
//! - [`subnet_stats`]: the per-subnet `ips{total,active,released,free,backup,unused,static}`
//!   counts, with DHCPStats' counting bugs fixed (see [`stats`]).
//!
//! The crate is pure: it reads files and nothing else (no sockets, no async runtime).
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod conf;
mod leases;
mod model;
pub mod stats;
mod stream;
mod syntax;
mod time;

use std::path::{Path, PathBuf};

pub use conf::{FileLoader, FsLoader, MAX_INCLUDE_DEPTH, parse_conf, read_conf, read_conf_with};
pub use leases::{no_binding_state_warning, parse_leases, read_leases};
pub use model::{
    BindingState, FailoverPeerState, Hardware, IscConfig, IscHost, IscLease, IscLeases, IscSubnet,
    Warning,
};
pub use stats::{IpCounts, SubnetStats, subnet_index_of, subnet_stats, total_counts};
pub use stream::{LeaseEntry, LeaseReader, MAX_STATEMENT_BYTES};
pub use time::IscTime;

/// A syntax or semantic error in a configuration file, with its place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{col}: {message}")]
pub struct ParseError {
    /// The file (as given, or resolved for includes).
    pub file: String,
    /// 1-based line.
    pub line: u32,
    /// 1-based column (characters).
    pub col: u32,
    /// What is wrong.
    pub message: String,
}

/// Why a file could not be read into the model.
#[derive(Debug, thiserror::Error)]
pub enum IscError {
    /// The file (or an included file) could not be read.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path that failed.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The configuration is malformed.
    #[error(transparent)]
    Parse(#[from] ParseError),
}

impl IscError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> IscError {
        IscError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Bytes in ISC's escaped text form (printable ASCII as is, `"` and `\` escaped, the rest as
/// `\NNN` octal), which is how dhcpd writes `uid` and how DHCPStats clients expect to see it.
pub fn isc_escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'"' => s.push_str("\\\""),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\{b:03o}")),
        }
    }
    s
}

/// Bytes as colon-separated lower-case hex (`01:52:54:00:0a:0b:0c`), the usual way to show a
/// client identifier or an Option 82 value.
pub fn hex_colon(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_forms() {
        assert_eq!(isc_escape(b"\xff\x00RT\"\\"), "\\377\\000RT\\\"\\\\");
        assert_eq!(hex_colon(&[1, 0xab]), "01:ab");
        assert_eq!(hex_colon(&[]), "");
    }
}

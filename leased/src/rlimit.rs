//! The open-files limit of the long-running verbs (`serve`, `relay`, `isc serve`).
//!
//! Why: every client connection, socket, lease file and history write needs a descriptor, and
//! the usual soft limit (1024) is far below what the hard limit allows. The connection caps of
//! the listeners keep the count bounded; raising the soft limit to the hard one makes sure
//! that bound fits, so that a reload or a history write never fails for want of a descriptor.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft `RLIMIT_NOFILE` to the hard limit. Failing to is logged, not fatal: the
/// server still runs, with the limit it was given.
pub fn raise_open_files() {
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => tracing::info!(from = soft, to = hard, "raised the open-files limit"),
            Err(e) => tracing::warn!(
                soft,
                hard,
                error = %e,
                "cannot raise the open-files limit; keeping the soft limit"
            ),
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot read the open-files limit"),
    }
}

//! What only this system can tell about a config: whether `[server] user` and `group` name
//! accounts that exist. Checked by the loader, so `leased check` and a reload report a typo at
//! its line, before a start would fail on it.

use nix::unistd::{Gid, Group, Uid, User};

use crate::account::AccountName;
use crate::error::ConfigError;
use crate::model::ProcessSettings;

/// Who to become: a resolved `[server] user` / `group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    /// The user's name as configured (for messages).
    pub user: String,
    /// Its uid.
    pub uid: u32,
    /// The group's name as configured, or the user's primary group's name.
    pub group: String,
    /// The gid leased runs with (also its only supplementary group).
    pub gid: u32,
}

fn config_error(origin: &str, key: &str, at: &AccountName, message: String) -> ConfigError {
    ConfigError {
        origin: origin.to_string(),
        line: at.line,
        col: at.col,
        key: key.to_string(),
        message,
    }
}

/// Looks `[server] user` and `group` up in the system's user database (`/etc/passwd`, NSS).
/// `None` when no user is configured. Errors point at the value in the file (`origin`).
pub fn resolve_accounts(
    server: &ProcessSettings,
    origin: &str,
) -> Result<Option<RunAs>, Vec<ConfigError>> {
    let Some(user) = &server.user else {
        return Ok(None);
    };
    let mut errors = Vec::new();
    let entry = match user.numeric() {
        Some(uid) => User::from_uid(Uid::from_raw(uid)),
        None => User::from_name(&user.name),
    };
    let (uid, primary) = match entry {
        Ok(Some(u)) => (Some(u.uid.as_raw()), Some(u.gid.as_raw())),
        // A bare numeric uid with no passwd entry is fine when the group is given too.
        Ok(None) if user.numeric().is_some() && server.group.is_some() => (user.numeric(), None),
        Ok(None) if user.numeric().is_some() => {
            errors.push(config_error(
                origin,
                "server.user",
                user,
                format!(
                    "uid {} has no entry in the user database; set server.group too",
                    user.name
                ),
            ));
            (None, None)
        }
        Ok(None) => {
            errors.push(config_error(
                origin,
                "server.user",
                user,
                format!("no user {:?} on this system (create it, e.g. `useradd --system --no-create-home --shell /usr/sbin/nologin {}`)", user.name, user.name),
            ));
            (None, None)
        }
        Err(e) => {
            errors.push(config_error(
                origin,
                "server.user",
                user,
                format!("cannot look up user {:?}: {e}", user.name),
            ));
            (None, None)
        }
    };
    if uid == Some(0) {
        errors.push(config_error(
            origin,
            "server.user",
            user,
            format!(
                "{:?} is root (uid 0): nothing would be dropped; leave server.user out to run \
                 as root",
                user.name
            ),
        ));
    }
    let group = match &server.group {
        Some(g) => {
            let entry = match g.numeric() {
                Some(gid) => Group::from_gid(Gid::from_raw(gid)),
                None => Group::from_name(&g.name),
            };
            match entry {
                Ok(Some(e)) => Some((g.name.clone(), e.gid.as_raw())),
                Ok(None) if g.numeric().is_some() => g.numeric().map(|id| (g.name.clone(), id)),
                Ok(None) => {
                    errors.push(config_error(
                        origin,
                        "server.group",
                        g,
                        format!("no group {:?} on this system", g.name),
                    ));
                    None
                }
                Err(e) => {
                    errors.push(config_error(
                        origin,
                        "server.group",
                        g,
                        format!("cannot look up group {:?}: {e}", g.name),
                    ));
                    None
                }
            }
        }
        None => primary.map(|gid| {
            let name = Group::from_gid(Gid::from_raw(gid))
                .ok()
                .flatten()
                .map_or_else(|| gid.to_string(), |g| g.name);
            (name, gid)
        }),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    match (uid, group) {
        (Some(uid), Some((group, gid))) => Ok(Some(RunAs {
            user: user.name.clone(),
            uid,
            group,
            gid,
        })),
        _ => Err(vec![config_error(
            origin,
            "server.user",
            user,
            format!("cannot resolve user {:?}", user.name),
        )]),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn settings(user: Option<&str>, group: Option<&str>) -> ProcessSettings {
        let mut s = ProcessSettings::default();
        let at = |n: &str| AccountName {
            name: n.to_string(),
            line: 3,
            col: 8,
        };
        s.user = user.map(at);
        s.group = group.map(at);
        s
    }

    #[test]
    fn resolves_names_and_ids() {
        assert_eq!(resolve_accounts(&settings(None, None), "f"), Ok(None));
        let root = resolve_accounts(&settings(Some("root"), None), "f").unwrap_err();
        assert!(
            root[0].to_string().starts_with("f:3:8: server.user: "),
            "{root:?}"
        );
        let missing =
            resolve_accounts(&settings(Some("no-such-user-leased"), None), "f").unwrap_err();
        assert!(missing[0].to_string().contains("no user"), "{missing:?}");
        let g = resolve_accounts(
            &settings(Some("4000000"), Some("no-such-group-leased")),
            "f",
        );
        assert_eq!(g.unwrap_err()[0].key, "server.group");
        let bare = resolve_accounts(&settings(Some("4000000"), Some("4000001")), "f").unwrap();
        assert_eq!(bare.map(|r| (r.uid, r.gid)), Some((4_000_000, 4_000_001)));
        assert!(resolve_accounts(&settings(Some("4000000"), None), "f").is_err());
    }
}

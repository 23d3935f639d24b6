//! `[server] user` and `[server] group`: the account leased runs as once its sockets are bound
//! and its files are open.
//!
//! Why the name keeps its position: whether the account exists is a question for the system's
//! user database, which the file stage does not ask. `lookup.rs` resolves the name when the
//! loader reads the file (for `serve`, reload and `leased check` alike) and reports an unknown one at the line
//! and column the operator wrote it, like every other config error.

use crate::ctx::Ctx;
use crate::file::RawServer;

/// A user or group as written in the config: a name, or a numeric id in decimal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountName {
    /// As written (trimmed of nothing: names are case- and space-sensitive).
    pub name: String,
    /// Where the value stands in the config file (1-based; 0 when unknown).
    pub line: usize,
    /// Column of the value (1-based; 0 when unknown).
    pub col: usize,
}

impl AccountName {
    /// The numeric id when the value is one (`"65534"`), else `None` (a name to look up).
    pub fn numeric(&self) -> Option<u32> {
        if self.name.bytes().all(|b| b.is_ascii_digit()) {
            self.name.parse().ok()
        } else {
            None
        }
    }
}

/// Longest account name accepted (Linux `useradd` allows 32).
const MAX_NAME: usize = 32;

/// Checks `value` as a portable account name (POSIX portable filename characters, not starting
/// with `-`, an optional trailing `$` as Samba machine accounts have) or a decimal id.
fn check(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Err("must not be empty".into());
    }
    if value.bytes().all(|b| b.is_ascii_digit()) {
        return match value.parse::<u32>() {
            Ok(u32::MAX) | Err(_) => Err(format!("{value} is not a valid numeric id")),
            Ok(_) => Ok(()),
        };
    }
    if value.len() > MAX_NAME {
        return Err(format!("longer than {MAX_NAME} characters"));
    }
    let body = value.strip_suffix('$').unwrap_or(value);
    let portable = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-');
    if body.starts_with('-') || body.is_empty() || !body.bytes().all(portable) {
        return Err(format!(
            "{value:?} is not an account name (letters, digits, '_', '.', '-', not starting \
             with '-') nor a numeric id"
        ));
    }
    Ok(())
}

fn one(ctx: &mut Ctx<'_>, path: &str, value: Option<&String>) -> Option<AccountName> {
    let value = value?;
    if let Err(m) = check(value) {
        ctx.err(path, m);
        return None;
    }
    let (line, col) = ctx.value_pos(path);
    Some(AccountName {
        name: value.clone(),
        line,
        col,
    })
}

/// Checks `[server] user` and `group`: `(user, group)`. A group alone is an error: dropping
/// the group while staying root would change nothing that matters.
pub(crate) fn accounts(
    ctx: &mut Ctx<'_>,
    raw: &RawServer,
) -> (Option<AccountName>, Option<AccountName>) {
    let user = one(ctx, "server.user", raw.user.as_ref());
    let group = one(ctx, "server.group", raw.group.as_ref());
    if raw.group.is_some() && raw.user.is_none() {
        ctx.err(
            "server.group",
            "needs server.user: leased changes its group only when it changes its user",
        );
    }
    (user, group)
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn names_and_ids() {
        for ok in [
            "leased",
            "_dhcp",
            "nobody",
            "svc-leased",
            "a.b",
            "host$",
            "65534",
            "0",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "-x",
            "a b",
            "a:b",
            "ünï",
            "$",
            "4294967295",
            "99999999999",
            "a/b",
        ] {
            assert!(check(bad).is_err(), "{bad}");
        }
        assert!(check(&"x".repeat(33)).is_err());
    }
}

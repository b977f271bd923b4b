//! Resolves a service's user and group the way Pebble's `NormalizeUidGid` does.

use nix::unistd::{Gid, Group, Uid, User};

/// Resolved credentials: `None` when the plan names no user or group.
pub(crate) type Creds = Option<(u32, u32)>;

/// Applies Pebble's consistency rules to a user/user-id/group/group-id quadruple.
pub(crate) fn normalize(
    uid: Option<u32>,
    gid: Option<u32>,
    user: &str,
    group: &str,
) -> Result<Creds, String> {
    if uid.is_none() && gid.is_none() && user.is_empty() && group.is_empty() {
        return Ok(None);
    }
    let mut uid = uid;
    let mut gid = gid;
    if !user.is_empty() {
        let u = User::from_name(user)
            .map_err(|e| format!("user: cannot look up user {user}: {e}"))?
            .ok_or_else(|| format!("user: unknown user {user}"))?;
        let n = u.uid.as_raw();
        if let Some(want) = uid
            && want != n
        {
            return Err(format!(
                "user {user:?} UID ({n}) does not match user-id ({want})"
            ));
        }
        uid = Some(n);
        if gid.is_none() && group.is_empty() {
            gid = Some(u.gid.as_raw());
        }
    }
    if !group.is_empty() {
        let g = Group::from_name(group)
            .map_err(|e| format!("group: cannot look up group {group}: {e}"))?
            .ok_or_else(|| format!("group: unknown group {group}"))?;
        let n = g.gid.as_raw();
        if let Some(want) = gid
            && want != n
        {
            return Err(format!(
                "group {group:?} GID ({n}) does not match group-id ({want})"
            ));
        }
        gid = Some(n);
    }
    match (uid, gid) {
        (None, Some(_)) => Err("must specify user, not just group".into()),
        (Some(u), None) => {
            let user = User::from_uid(Uid::from_raw(u))
                .map_err(|e| format!("user: cannot look up user id {u}: {e}"))?
                .ok_or_else(|| format!("user: unknown userid {u}"))?;
            Ok(Some((u, user.gid.as_raw())))
        }
        (Some(u), Some(g)) => Ok(Some((u, g))),
        (None, None) => Ok(None),
    }
}

/// Whether the credentials are the process's own (no switch needed).
pub(crate) fn is_current(uid: u32, gid: u32) -> bool {
    Uid::current().as_raw() == uid && Gid::current().as_raw() == gid
}

/// HOME and USER for a uid, from the password database.
pub(crate) fn home_and_name(uid: u32) -> Option<(String, String)> {
    let u = User::from_uid(Uid::from_raw(uid)).ok().flatten()?;
    Some((u.dir.to_string_lossy().into_owned(), u.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_set_means_no_switch() {
        assert_eq!(normalize(None, None, "", ""), Ok(None));
    }

    #[test]
    fn group_alone_is_refused() {
        assert_eq!(
            normalize(None, Some(0), "", ""),
            Err("must specify user, not just group".into())
        );
    }

    #[test]
    fn user_id_must_match_user() {
        assert_eq!(
            normalize(Some(4242), None, "root", ""),
            Err("user \"root\" UID (0) does not match user-id (4242)".into())
        );
    }

    #[test]
    fn user_brings_primary_group() {
        assert_eq!(normalize(None, None, "root", ""), Ok(Some((0, 0))));
        assert_eq!(normalize(Some(0), None, "", ""), Ok(Some((0, 0))));
    }
}

//! Which container's API a Pebble-style command talks to: `--container app/N[/name]` under
//! the host's state directory, else `$PEBBLE_SOCKET` or `$PEBBLE/.pebble.socket`.

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};

/// Resolves the API socket of the selected container: `--container app/N[/name]` under the
/// state directory, else `$PEBBLE_SOCKET` or `$PEBBLE/.pebble.socket`.
pub fn resolve_socket(state_dir: &Path, container: Option<&str>) -> Result<PathBuf> {
    let Some(sel) = container else {
        let env_set = |k: &str| std::env::var_os(k).is_some_and(|v| !v.is_empty());
        // Invoked as `pebble` (a symlink), it defaults as Pebble's CLI does
        // (`/var/lib/pebble/default/.pebble.socket`).
        let as_pebble = std::env::args_os()
            .next()
            .is_some_and(|a| Path::new(&a).file_name().is_some_and(|f| f == "pebble"));
        if as_pebble || env_set("PEBBLE_SOCKET") || env_set("PEBBLE") {
            return Ok(crate::standalone::pebble_socket());
        }
        bail!(
            "no container selected: use --container <unit>/<name>, or set PEBBLE or PEBBLE_SOCKET"
        );
    };
    let mut parts = sel.splitn(3, '/');
    let (app, num, name) = (parts.next(), parts.next(), parts.next());
    let (Some(app), Some(num)) = (app, num) else {
        bail!("invalid container {sel:?}: expected <app>/<unit-number>[/<container>]");
    };
    if app.is_empty() || num.parse::<u32>().is_err() {
        bail!("invalid container {sel:?}: expected <app>/<unit-number>[/<container>]");
    }
    let unit_dir = state_dir.join("units").join(format!("{app}-{num}"));
    let containers = unit_dir.join("containers");
    if !unit_dir.is_dir() {
        bail!(
            "cannot find unit \"{app}/{num}\" in {}",
            state_dir.display()
        );
    }
    let mut names: Vec<String> = std::fs::read_dir(&containers)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let name = match name {
        Some(n) => {
            if !names.iter().any(|x| x == n) {
                bail!(
                    "unit \"{app}/{num}\" has no container {n:?} (it has: {})",
                    list_or_none(&names)
                );
            }
            n.to_string()
        }
        None => match names.as_slice() {
            [one] => one.clone(),
            [] => bail!("unit \"{app}/{num}\" has no containers"),
            _ => bail!(
                "unit \"{app}/{num}\" has several containers, choose one of: {}",
                names
                    .iter()
                    .map(|n| format!("{app}/{num}/{n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    Ok(containers.join(name).join(".pebble.socket"))
}

fn list_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_container_is_chosen_by_unit_and_name() {
        let d = std::env::temp_dir().join(format!("cairn-select-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let c = d.join("units/web-0/containers");
        std::fs::create_dir_all(c.join("web")).unwrap();
        let s = resolve_socket(&d, Some("web/0")).unwrap();
        assert_eq!(s, c.join("web/.pebble.socket"));
        assert_eq!(resolve_socket(&d, Some("web/0/web")).unwrap(), s);
        let e = resolve_socket(&d, Some("web/0/db")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unit \"web/0\" has no container \"db\" (it has: web)"
        );
        std::fs::create_dir_all(c.join("aux")).unwrap();
        let e = resolve_socket(&d, Some("web/0")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "unit \"web/0\" has several containers, choose one of: web/0/aux, web/0/web"
        );
        assert!(resolve_socket(&d, Some("web")).is_err());
        assert!(
            resolve_socket(&d, Some("db/1"))
                .unwrap_err()
                .to_string()
                .starts_with("cannot find unit \"db/1\"")
        );
        std::fs::remove_dir_all(&d).unwrap();
    }
}

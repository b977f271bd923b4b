//! Pebble's client-side state file (`$XDG_CONFIG_HOME/pebble/cli.json`, shared with Pebble's
//! own CLI): per socket, what `notices`/`warnings` listed last and what `okay` acknowledged.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow};
use cairn_supervisor::timefmt::rfc3339;
use time::OffsetDateTime;

use super::times::parse_time;

/// One socket's entry of the state file.
#[derive(Default)]
pub struct CliState {
    /// The last notice `notices` listed.
    pub notices_last_listed: Option<OffsetDateTime>,
    /// The last notice `okay` acknowledged.
    pub notices_last_okayed: Option<OffsetDateTime>,
    /// The last warning `warnings` listed.
    pub warnings_last_listed: Option<OffsetDateTime>,
    /// The last warning `okay` acknowledged.
    pub warnings_last_okayed: Option<OffsetDateTime>,
}

/// Go's zero time, which Pebble writes for "never".
const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Where Pebble keeps the file: `$XDG_CONFIG_HOME/pebble/cli.json`, else under
/// `~/.config`.
pub fn default_path() -> PathBuf {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".config")
        });
    config.join("pebble").join("cli.json")
}

fn load_full(path: &Path) -> Result<serde_json::Value> {
    match std::fs::read(path) {
        Ok(data) => serde_json::from_slice(&data).context("cannot load CLI state"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(serde_json::json!({ "pebble": {} }))
        }
        Err(e) => Err(anyhow!(e).context("cannot load CLI state")),
    }
}

impl CliState {
    /// The entry of `socket` in the file at `path` (all "never" when either is missing).
    pub fn load(path: &Path, socket: &Path) -> Result<CliState> {
        let full = load_full(path)?;
        let entry = &full["pebble"][socket.display().to_string()];
        let t = |k: &str| {
            entry[k]
                .as_str()
                .filter(|v| *v != GO_ZERO_TIME)
                .and_then(parse_time)
        };
        Ok(CliState {
            notices_last_listed: t("notices-last-listed"),
            notices_last_okayed: t("notices-last-okayed"),
            warnings_last_listed: t("warnings-last-listed"),
            warnings_last_okayed: t("warnings-last-okayed"),
        })
    }

    /// Writes the entry of `socket` back, keeping the other sockets' entries (mode 0600).
    pub fn save(&self, path: &Path, socket: &Path) -> Result<()> {
        let mut full = load_full(path)?;
        let t =
            |v: Option<OffsetDateTime>| v.map(rfc3339).unwrap_or_else(|| GO_ZERO_TIME.to_string());
        if !full["pebble"].is_object() {
            full["pebble"] = serde_json::json!({});
        }
        full["pebble"][socket.display().to_string()] = serde_json::json!({
            "notices-last-listed": t(self.notices_last_listed),
            "notices-last-okayed": t(self.notices_last_okayed),
            "warnings-last-listed": t(self.warnings_last_listed),
            "warnings-last-okayed": t(self.warnings_last_okayed),
        });
        let dir = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).context("cannot save CLI state")?;
        std::fs::write(path, serde_json::to_vec(&full)?).context("cannot save CLI state")?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
        }
        Ok(())
    }
}

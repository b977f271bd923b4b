//! Juju's hook tools, faked as ops' own test suite fakes them, for the Juju-style dispatch
//! tests (`tests/e2e/juju.rs`) and benchmark (`host/cairn/benches/juju_dispatch.rs`): one
//! `sh` script (`tests/juju/fake-hook-tool.sh`, described in `tests/juju/README.md`)
//! installed under every tool's name. It starts no other program, so a tool call costs one
//! `sh` start, the same for every charm that calls it.

use std::path::Path;

/// Every hook tool a dispatch may call.
pub const HOOK_TOOLS: &[&str] = &[
    "config-get",
    "is-leader",
    "status-get",
    "status-set",
    "action-get",
    "action-set",
    "action-log",
    "action-fail",
    "juju-log",
    "application-version-set",
    "relation-ids",
    "relation-list",
    "relation-get",
    "relation-set",
];

/// The fake hook tool's script.
pub const FAKE_HOOK_TOOL: &str = include_str!("../../juju/fake-hook-tool.sh");

/// Installs the fake hook tool in `bin` (created if missing) under every name of
/// [`HOOK_TOOLS`]; put `bin` first on the dispatch's `PATH`.
pub fn install_fake_hook_tools(bin: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(bin)?;
    let script = bin.join("hook-tool");
    std::fs::write(&script, FAKE_HOOK_TOOL)?;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    for tool in HOOK_TOOLS {
        std::os::unix::fs::symlink("hook-tool", bin.join(tool))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TempDir;
    use std::process::Command;

    #[test]
    fn fake_hook_tools_record_their_calls_and_answer_from_the_model() {
        let dir = TempDir::new("fake-hook-tools");
        let (bin, model) = (dir.join("bin"), dir.join("model"));
        install_fake_hook_tools(&bin).unwrap();
        std::fs::create_dir_all(&model).unwrap();
        std::fs::write(model.join("config.json"), r#"{"port": 80}"#).unwrap();
        let tool = |name: &str, args: &[&str]| {
            let out = Command::new(bin.join(name))
                .args(args)
                .env("FAKE_JUJU", &model)
                .output()
                .unwrap();
            assert!(out.status.success(), "{name}: {out:?}");
            String::from_utf8(out.stdout).unwrap()
        };
        assert_eq!(tool("config-get", &["--format=json"]), "{\"port\": 80}\n");
        assert_eq!(tool("is-leader", &["--format=json"]), "true\n");
        tool(
            "status-set",
            &["--application=false", "active", "--", "a b"],
        );
        assert_eq!(
            tool(
                "status-get",
                &["--include-data", "--format=json", "--application=false"]
            ),
            "{\"status\":\"active\",\"message\":\"a b\",\"status-data\":{}}\n"
        );
        assert_eq!(
            std::fs::read_to_string(model.join("calls")).unwrap(),
            "config-get\t--format=json\nis-leader\t--format=json\n\
             status-set\t--application=false\tactive\t--\ta b\n\
             status-get\t--include-data\t--format=json\t--application=false\n"
        );
    }
}

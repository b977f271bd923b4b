//! What a packed dispatcher binary needs of the machine it runs on, read from its ELF
//! headers, so that `cairn pack` refuses a `.charm` whose `bin/cairn-dispatch` could not
//! start on the bases it declares (Juju would only find out at the first hook).
//!
//! A static binary (no program interpreter: the `x86_64-unknown-linux-musl` build) runs on
//! any base of its architecture. A glibc-linked one needs the newest `GLIBC_x.y` symbol
//! version it references to be at most the base's glibc: Ubuntu 20.04 has 2.31, 22.04
//! 2.35, 24.04 2.39 (the libraries besides libc that a Rust binary links, libm and
//! libgcc_s, are in every Ubuntu base).

use object::elf;
use object::read::elf::{ElfFile64, FileHeader};

use crate::JujuError;

/// A glibc version, `(major, minor)`.
pub type GlibcVersion = (u32, u32);

/// How an executable is built, as far as a base can run it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Executable {
    /// Juju's name of the architecture it is built for (`amd64`, `arm64`, …).
    pub arch: String,
    /// Whether it is linked dynamically (has a program interpreter).
    pub dynamic: bool,
    /// The newest `GLIBC_x.y` symbol version it needs, if it needs glibc.
    pub glibc: Option<GlibcVersion>,
}

/// Juju's name of an ELF machine.
fn juju_arch(machine: u16) -> String {
    match machine {
        elf::EM_X86_64 => "amd64".into(),
        elf::EM_AARCH64 => "arm64".into(),
        elf::EM_PPC64 => "ppc64el".into(),
        elf::EM_S390 => "s390x".into(),
        elf::EM_RISCV => "riscv64".into(),
        other => format!("elf-machine-{other}"),
    }
}

/// `GLIBC_2.35` → `(2, 35)`; other version names (`GLIBC_PRIVATE`, `GCC_3.0`) → `None`.
fn glibc_version(name: &[u8]) -> Option<GlibcVersion> {
    let v = std::str::from_utf8(name.strip_prefix(b"GLIBC_")?).ok()?;
    let mut parts = v.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next().unwrap_or(Some(0))?))
}

/// Reads a 64-bit ELF executable's architecture and linkage.
pub fn inspect(bytes: &[u8]) -> Result<Executable, String> {
    let file = ElfFile64::<object::Endianness>::parse(bytes)
        .map_err(|e| format!("not a 64-bit ELF executable: {e}"))?;
    let endian = file.endian();
    let header = file.elf_header();
    let dynamic = file
        .elf_program_headers()
        .iter()
        .any(|ph| object::read::elf::ProgramHeader::p_type(ph, endian) == elf::PT_INTERP);
    let sections = file.elf_section_table();
    let mut glibc: Option<GlibcVersion> = None;
    let needs = sections
        .gnu_verneed(endian, bytes)
        .map_err(|e| format!("cannot read symbol versions: {e}"))?;
    if let Some((mut needs, link)) = needs {
        let strings = sections
            .strings(endian, bytes, link)
            .map_err(|e| format!("cannot read symbol versions: {e}"))?;
        while let Some((_, mut aux)) = needs
            .next()
            .map_err(|e| format!("cannot read symbol versions: {e}"))?
        {
            while let Some(a) = aux
                .next()
                .map_err(|e| format!("cannot read symbol versions: {e}"))?
            {
                let name = a
                    .name(endian, strings)
                    .map_err(|e| format!("cannot read symbol versions: {e}"))?;
                if let Some(v) = glibc_version(name) {
                    glibc = glibc.max(Some(v));
                }
            }
        }
    }
    Ok(Executable {
        arch: juju_arch(header.e_machine(endian)),
        dynamic,
        glibc,
    })
}

/// The glibc of a base, when it is one this knows (Ubuntu's releases charmcraft builds
/// for).
pub fn base_glibc(name: &str, channel: &str) -> Option<GlibcVersion> {
    match (name, channel) {
        ("ubuntu", "20.04") => Some((2, 31)),
        ("ubuntu", "22.04") => Some((2, 35)),
        ("ubuntu", "24.04") => Some((2, 39)),
        ("ubuntu", "24.10") => Some((2, 40)),
        ("ubuntu", "25.04") => Some((2, 41)),
        _ => None,
    }
}

/// Checks that `exe` (packed as `what`) runs on every base of `manifest.yaml`'s `bases`:
/// built for each base's architectures, and static or needing no newer glibc than the
/// base has (a base this does not know is taken on trust).
pub fn check_runs_on(
    exe: &Executable,
    what: &str,
    bases: &serde_yaml::Value,
) -> Result<(), JujuError> {
    let static_hint = "build it static (cargo build --release --target x86_64-unknown-linux-musl -p cairn --bin cairn-dispatch) and pack it with --dispatcher";
    for base in bases.as_sequence().into_iter().flatten() {
        let name = base["name"].as_str().unwrap_or("ubuntu");
        let channel = base["channel"].as_str().unwrap_or_default();
        for arch in base["architectures"].as_sequence().into_iter().flatten() {
            let arch = arch.as_str().unwrap_or_default();
            if arch != exe.arch {
                return Err(JujuError::Pack(format!(
                    "{what} is built for {}, not for {arch} of base {name}@{channel}: pack one .charm per architecture",
                    exe.arch
                )));
            }
        }
        if let (true, Some(need), Some(has)) = (exe.dynamic, exe.glibc, base_glibc(name, channel))
            && need > has
        {
            return Err(JujuError::Pack(format!(
                "{what} needs GLIBC_{}.{}, newer than the {}.{} of base {name}@{channel}: {static_hint}",
                need.0, need.1, has.0, has.1
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bases(yaml: &str) -> serde_yaml::Value {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn a_glibc_linked_executable_shows_its_architecture_and_newest_glibc() {
        // This test's own binary: glibc-linked, for the machine it runs on.
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let exe = inspect(&me).unwrap();
        assert_eq!(exe.arch, crate::pack::juju_arch());
        assert!(exe.dynamic);
        let (major, minor) = exe.glibc.expect("a Rust binary needs some GLIBC_ version");
        assert_eq!(major, 2);
        assert!(minor >= 2, "{minor}");
    }

    #[test]
    fn a_file_that_is_not_elf_is_refused() {
        let e = inspect(b"#!/bin/sh\nexit 0\n").unwrap_err();
        assert!(e.starts_with("not a 64-bit ELF executable"), "{e}");
    }

    #[test]
    fn glibc_version_names_are_read_as_numbers() {
        assert_eq!(glibc_version(b"GLIBC_2.35"), Some((2, 35)));
        assert_eq!(glibc_version(b"GLIBC_2.2.5"), Some((2, 2)));
        assert_eq!(glibc_version(b"GLIBC_PRIVATE"), None);
        assert_eq!(glibc_version(b"GCC_3.0"), None);
        // 2.9 is older than 2.35, not newer.
        assert!(glibc_version(b"GLIBC_2.9") < glibc_version(b"GLIBC_2.35"));
    }

    #[test]
    fn a_dispatcher_needing_a_newer_glibc_than_a_base_is_refused() {
        let two = bases(
            "- {name: ubuntu, channel: '24.04', architectures: [amd64]}\n- {name: ubuntu, channel: '22.04', architectures: [amd64]}\n",
        );
        let glibc = |minor| Executable {
            arch: "amd64".into(),
            dynamic: true,
            glibc: Some((2, minor)),
        };
        check_runs_on(&glibc(35), "bin/cairn-dispatch", &two).unwrap();
        let e = check_runs_on(&glibc(38), "bin/cairn-dispatch", &two)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("cannot pack charm: bin/cairn-dispatch needs GLIBC_2.38, newer than the 2.35 of base ubuntu@22.04: build it static"),
            "{e}"
        );
        // A static build runs on any base of its architecture.
        let musl = Executable {
            arch: "amd64".into(),
            dynamic: false,
            glibc: None,
        };
        check_runs_on(&musl, "bin/cairn-dispatch", &two).unwrap();
        // A base this does not know is taken on trust.
        let other = bases("- {name: centos, channel: '7', architectures: [amd64]}\n");
        check_runs_on(&glibc(38), "bin/cairn-dispatch", &other).unwrap();
    }

    #[test]
    fn a_dispatcher_for_another_architecture_is_refused() {
        let arm = bases("- {name: ubuntu, channel: '22.04', architectures: [amd64, arm64]}\n");
        let exe = Executable {
            arch: "amd64".into(),
            dynamic: false,
            glibc: None,
        };
        let e = check_runs_on(&exe, "bin/cairn-dispatch", &arm)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cannot pack charm: bin/cairn-dispatch is built for amd64, not for arm64 of base ubuntu@22.04: pack one .charm per architecture"
        );
    }
}

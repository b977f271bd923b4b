//! Links the `cairn` client binary as a position-dependent executable: the dynamic loader
//! then has no relocations of its own data to apply at each start (about 16,000 as a PIE,
//! a third of a millisecond of a client command here). The host (`cairn-host`) stays a
//! PIE: it is the long-lived process that runs other people's code.

fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.contains("linux") {
        println!("cargo:rustc-link-arg-bin=cairn=-no-pie");
    }
}

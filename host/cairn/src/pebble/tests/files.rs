//! `push`, `pull`, `ls`, `mkdir` and `rm`.

use super::{Container, Outcome, mask_clock};

#[tokio::test(flavor = "multi_thread")]
async fn push_ls_pull_mkdir_rm() {
    let c = Container::start("files").await;
    let remote = c.dir.join("remote");
    let local = c.dir.join("local.bin");
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&local, &data).unwrap();
    let target = remote.join("sub/data.bin");
    let (local_s, target_s) = (local.to_str().unwrap(), target.to_str().unwrap());
    assert_eq!(
        c.run(&["push", "-p", "-m", "640", local_s, target_s]).await,
        Outcome::ok("")
    );
    assert_eq!(std::fs::read(&target).unwrap(), data);

    let user = nix::unistd::User::from_uid(nix::unistd::getuid())
        .unwrap()
        .unwrap()
        .name;
    let group = nix::unistd::Group::from_gid(nix::unistd::getgid())
        .unwrap()
        .unwrap()
        .name;
    let sub = remote.join("sub");
    let o = c.run(&["ls", "-l", sub.to_str().unwrap()]).await;
    assert_eq!(
        mask_clock(&o.out),
        format!("-rw-r-----  {user}  {group}   300kB  today at HH:MM UTC  data.bin\n")
    );
    let glob = format!("{}/*.bin", sub.display());
    assert_eq!(c.run(&["ls", &glob]).await, Outcome::ok("data.bin\n"));
    assert_eq!(
        c.run(&["ls", &format!("{}/*/x", remote.display())]).await,
        Outcome::error("can only use globs on the last path element")
    );
    let o = c.run(&["ls", "-d", "--format", "json", target_s]).await;
    assert!(o.out.starts_with("{\"files\":[{"), "{o:?}");

    let back = c.dir.join("back.bin");
    let back_s = back.to_str().unwrap();
    assert_eq!(c.run(&["pull", target_s, back_s]).await, Outcome::ok(""));
    assert_eq!(std::fs::read(&back).unwrap(), data);
    let nope = remote.join("nope");
    assert_eq!(
        c.run(&["pull", nope.to_str().unwrap(), back_s]).await,
        Outcome::error(&format!(
            "stat {}: no such file or directory",
            nope.display()
        ))
    );
    assert_eq!(
        std::fs::read(&back).unwrap(),
        data,
        "a failed pull changed the file"
    );

    let xy = remote.join("x/y");
    assert_eq!(
        c.run(&["mkdir", xy.to_str().unwrap()]).await,
        // As Pebble: the directory is made under a temporary name and renamed into place.
        Outcome::error(&format!(
            "mkdir {}.mkdir-new: no such file or directory",
            xy.display()
        ))
    );
    assert_eq!(
        c.run(&["mkdir", "-p", xy.to_str().unwrap()]).await,
        Outcome::ok("")
    );
    assert!(xy.is_dir());
    let remote_s = remote.to_str().unwrap();
    assert_eq!(
        c.run(&["rm", remote_s]).await,
        Outcome::error(&format!("remove {remote_s}: directory not empty"))
    );
    assert_eq!(c.run(&["rm", "-r", remote_s]).await, Outcome::ok(""));
    assert!(!remote.exists());
    c.close().await;
}

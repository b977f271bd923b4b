//! Attacks through the charm's host calls and WASI: each beside the calm co-tenant.

use std::time::Duration;

use anyhow::Result;

use super::*;

#[test]
fn a_spinning_guest_is_cut_at_its_deadline_and_does_not_slow_its_neighbour() -> Result<()> {
    let d = Daemon::start(
        "hostile-spin",
        &["--event-deadline", "2s", "--retry-delay", "100ms"],
    )?;
    let mut calm = Calm::deploy(&d)?;
    d.ok(&["deploy", &program("misbehave"), "--name", "spin"])?;
    d.wait_status("spin/0", "active", "handled 1", Duration::from_secs(30))?;
    calm.beside("spin", || {
        d.ok(&["config", "spin", "mode=loop"])?;
        // Under way: the first spin has begun (it fails at its deadline and is retried,
        // spinning again, for as long as the test runs).
        std::thread::sleep(Duration::from_millis(300));
        Ok(())
    })?;
    let failure = wait_failure(&d, "spin/0", "deadline", Duration::from_secs(10))?;
    assert!(
        failure.contains("event deadline of 2s exceeded"),
        "{failure}"
    );
    Ok(())
}

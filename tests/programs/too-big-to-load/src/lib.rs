//! A test guest that cannot be instantiated under the default budget: a 96 MiB zeroed
//! static makes its module's minimum linear memory 96 MiB, over the 64 MiB a unit gets.
//! What a host must refuse when it checks a component (on refresh) rather than find out
//! at the first event.

use cairn_sdk::prelude::*;

use std::sync::atomic::{AtomicU8, Ordering};

/// Part of the module's memory from its first instruction (mutable, so zeroed memory
/// rather than bytes in the component).
static BALLAST: [AtomicU8; 96 << 20] = [const { AtomicU8::new(0) }; 96 << 20];

/// The charm; it never gets to handle anything.
#[derive(Default)]
struct TooBigToLoad;

impl Charm for TooBigToLoad {
    fn on_install(&mut self, _ctx: &mut Context) -> Result<()> {
        // Written and read, so the static is kept.
        let at = std::hint::black_box(0);
        info!("ballast {}", BALLAST[at].fetch_add(1, Ordering::Relaxed));
        Ok(())
    }
}

export_charm!(TooBigToLoad);

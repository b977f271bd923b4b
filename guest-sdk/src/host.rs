//! The host calls behind the SDK's API.
//!
//! Inside a Cairn host (`wasm32`) they are the WIT imports of the `cairn:charm/charm`
//! world; natively they go to the fake unit of a [`testing::Harness`](crate::testing::Harness).

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(target_arch = "wasm32")]
mod wasm;

#[cfg(not(target_arch = "wasm32"))]
pub(crate) use native::*;
#[cfg(target_arch = "wasm32")]
pub(crate) use wasm::*;

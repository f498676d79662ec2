//! The record/replay guest, fixed (see `../checkout/mod.rs`).
#![no_main]
const FIXED: bool = true;
include!("../checkout/mod.rs");

//! The record/replay guest, with its bug (see `../checkout/mod.rs`).
#![no_main]
const FIXED: bool = false;
include!("../checkout/mod.rs");

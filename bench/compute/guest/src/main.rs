//! The compute suite's guest: `run-kernel(kernel, size)` runs one kernel of `compute-kernels`.
mod bindings {
    wit_bindgen::generate!({ path: "wit", world: "atoll:bench/compute" });
}

struct Compute;

impl bindings::Guest for Compute {
    fn run_kernel(kernel: String, size: u32) -> Result<u64, String> {
        compute_kernels::run(&kernel, size).ok_or_else(|| format!("no kernel `{kernel}`"))
    }
}

bindings::export!(Compute with_types_in bindings);

// Built as a program; the host calls the export.
fn main() {}

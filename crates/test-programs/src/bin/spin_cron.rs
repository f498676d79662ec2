//! A Spin cron component (`fermyon:spin-cron@2.0.0`, as built with Spin's cron SDK):
//! prints `spin cron tick <timestamp>` on each tick; with `JOB_MODE=fail` it returns the
//! world's error instead.
mod bindings {
    wit_bindgen::generate!({ path: "wit-spin-cron", world: "fermyon:spin-cron/spin-cron" });
}

use bindings::fermyon::spin_cron::cron_types::{Error, Metadata};

struct Job;
impl bindings::Guest for Job {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        if std::env::var("JOB_MODE").as_deref() == Ok("fail") {
            return Err(Error::Other("spin cron job failed on purpose".into()));
        }
        println!("spin cron tick {}", metadata.timestamp);
        Ok(())
    }
}
bindings::export!(Job with_types_in bindings);
fn main() {}

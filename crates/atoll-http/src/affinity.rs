//! Pinning event-loop threads to cores (Linux; a no-op elsewhere).
//!
//! Why: with one event loop per core and nothing tying a loop to its core, the scheduler
//! sometimes stacks both loops of a 2-core machine on one core while the other runs a
//! co-located process or idles; each loop then waits milliseconds behind the other (seen
//! with `perf sched`: 4-8 ms run-queue waits, p99 at 40k req/s of 12-17 ms unpinned,
//! 0.7 ms pinned). A loop on a core of its own only competes with other processes.

/// The CPUs this process may run on (its affinity mask, which honours `taskset` and
/// cpusets), in ascending order; empty where that cannot be read.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, writable cpu_set_t of the size passed.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        if rc != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            // SAFETY: `cpu` is below CPU_SETSIZE, within the set.
            .filter(|&cpu| unsafe { libc::CPU_ISSET(cpu, &set) })
            .collect()
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// Pin the calling thread to `cpu`.
pub(crate) fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(std::io::Error::other(format!("CPU {cpu} is out of range")));
        }
        // SAFETY: cpu_set_t is plain data; zeroed is the empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
        // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
        let rc =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        Err(std::io::Error::other(
            "pinning threads is supported on Linux only",
        ))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn a_pinned_thread_runs_on_its_cpu_only() {
        let cpus = allowed_cpus();
        assert!(!cpus.is_empty(), "the affinity mask lists at least one CPU");
        let last = *cpus.last().expect("one CPU");
        std::thread::spawn(move || {
            pin_current_thread(last).expect("pin");
            assert_eq!(allowed_cpus(), vec![last]);
            for _ in 0..100 {
                // SAFETY: sched_getcpu takes no arguments.
                let now = unsafe { libc::sched_getcpu() };
                assert_eq!(now, last as i32);
                std::thread::yield_now();
            }
        })
        .join()
        .expect("pinned thread");
        // Only the spawned thread was pinned.
        assert_eq!(allowed_cpus(), cpus);
        assert!(pin_current_thread(libc::CPU_SETSIZE as usize).is_err());
    }
}

/// Memory one concurrent `go build` may need at its peak (compiling and linking a large service);
/// used to cap the default job count on small machines.
pub const MEMORY_PER_JOB: u64 = 1 << 30;

/// The default global bound: the number of CPUs, capped so that jobs x [`MEMORY_PER_JOB`] fits in
/// the memory available now (Linux `MemAvailable`; other systems use the CPU count alone).
pub fn default_jobs() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    jobs_for(cpus, meminfo.as_deref())
}

/// The pure part of [`default_jobs`]: `cpus` capped by the `MemAvailable` line of `meminfo` (the
/// text of `/proc/meminfo`), at least 1. Without the file or the line, the CPU count alone.
fn jobs_for(cpus: usize, meminfo: Option<&str>) -> usize {
    let cpus = cpus.max(1);
    match meminfo.and_then(mem_available) {
        Some(bytes) => cpus.min(
            usize::try_from(bytes / MEMORY_PER_JOB)
                .unwrap_or(usize::MAX)
                .max(1),
        ),
        None => cpus,
    }
}

/// Bytes of `MemAvailable:` in `/proc/meminfo` text (the kernel writes the value in KiB: `kB`).
fn mem_available(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let value: u64 = fields.next()?.parse().ok()?;
    let unit = match fields.next() {
        None | Some("kB") => 1024,
        Some("B") => 1,
        Some(_) => return None,
    };
    value.checked_mul(unit)
}

/// The one bounded scheduler; it lives in kiln-types so that planning (one `go list` per build
/// context) can use it without depending on the executor.
pub use kiln_types::run_bounded;

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Condvar, Mutex};
    use std::time::Duration;

    /// A reusable rendezvous: every `size`-th arrival releases the `size` workers waiting (like
    /// `std::sync::Barrier`), while it tracks how many are inside at once. A scheduler running
    /// fewer than `size` at a time fails with a message instead of hanging.
    struct Rendezvous {
        size: usize,
        state: Mutex<RendezvousState>,
        released: Condvar,
    }

    #[derive(Default)]
    struct RendezvousState {
        inside: usize,
        peak: usize,
        arrived: usize,
        generation: u64,
    }

    impl Rendezvous {
        fn new(size: usize) -> Self {
            Self {
                size,
                state: Mutex::new(RendezvousState::default()),
                released: Condvar::new(),
            }
        }

        fn meet(&self) {
            let mut s = self.state.lock().unwrap();
            s.inside += 1;
            s.peak = s.peak.max(s.inside);
            s.arrived += 1;
            let generation = s.generation;
            if s.arrived == self.size {
                s.arrived = 0;
                s.generation += 1;
                self.released.notify_all();
            } else {
                while s.generation == generation {
                    // Not a timing assertion: a guard that turns a hang into a failure.
                    let (next, wait) = self
                        .released
                        .wait_timeout(s, Duration::from_secs(60))
                        .unwrap();
                    s = next;
                    assert!(
                        !wait.timed_out() || s.generation != generation,
                        "only {} of {} workers ever ran at once",
                        s.inside,
                        self.size
                    );
                }
            }
            s.inside -= 1;
        }

        fn peak(&self) -> usize {
            self.state.lock().unwrap().peak
        }
    }

    #[test]
    fn respects_bound_and_order() {
        for bound in [1, 2, 3] {
            // A multiple of the bound, so every rendezvous fills.
            let items: Vec<u32> = (0..(4 * bound as u32)).collect();
            let meet = Rendezvous::new(bound);
            let out = run_bounded(items.clone(), bound, |i: u32| {
                meet.meet();
                i * 2
            });
            assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
            // Each rendezvous needs `bound` workers inside at once, so the peak is at least the
            // bound whatever the thread timing, and a correct scheduler never lets more in.
            assert_eq!(meet.peak(), bound, "peak concurrency with bound {bound}");
        }
    }

    #[test]
    fn bound_larger_than_the_work_runs_everything_at_once() {
        let meet = Rendezvous::new(3);
        let out = run_bounded(vec![1, 2, 3], 8, |i: u32| {
            meet.meet();
            i
        });
        assert_eq!(out, [1, 2, 3]);
        assert_eq!(meet.peak(), 3);
        assert!(run_bounded(Vec::<u32>::new(), 4, |i| i).is_empty());
    }

    const MEMINFO: &str = "MemTotal:       16318412 kB\nMemFree:         1024000 kB\nMemAvailable:    {AVAIL} kB\nBuffers:          123456 kB\n";

    fn meminfo(avail_kib: u64) -> String {
        MEMINFO.replace("{AVAIL}", &avail_kib.to_string())
    }

    #[test]
    fn memory_caps_the_cpu_count() {
        // 3.5 GiB available: three jobs of 1 GiB fit, whatever the core count above that.
        assert_eq!(jobs_for(8, Some(&meminfo(3 * 1024 * 1024 + 512 * 1024))), 3);
        assert_eq!(jobs_for(2, Some(&meminfo(3 * 1024 * 1024 + 512 * 1024))), 2);
        // Exactly 4 GiB: four jobs.
        assert_eq!(jobs_for(16, Some(&meminfo(4 * 1024 * 1024))), 4);
    }

    #[test]
    fn tiny_memory_still_gives_one_job() {
        assert_eq!(jobs_for(8, Some(&meminfo(300 * 1024))), 1);
        assert_eq!(jobs_for(8, Some(&meminfo(0))), 1);
    }

    #[test]
    fn huge_memory_gives_the_cpu_count() {
        assert_eq!(jobs_for(6, Some(&meminfo(2 * 1024 * 1024 * 1024))), 6);
        assert_eq!(jobs_for(6, Some(&meminfo(u64::MAX / 1024))), 6);
        // A value whose byte count overflows is unusable: fall back to the CPUs.
        assert_eq!(jobs_for(6, Some(&meminfo(u64::MAX))), 6);
    }

    #[test]
    fn missing_or_malformed_meminfo_gives_the_cpu_count() {
        // Kernels before 3.14 have no MemAvailable line.
        let old = "MemTotal:       16318412 kB\nMemFree:         1024000 kB\n";
        assert_eq!(jobs_for(4, Some(old)), 4);
        assert_eq!(jobs_for(4, None), 4);
        assert_eq!(jobs_for(4, Some("MemAvailable: lots kB\n")), 4);
        assert_eq!(jobs_for(4, Some("MemAvailable: 100 MB\n")), 4);
        assert_eq!(jobs_for(4, Some("")), 4);
        // No CPU count at all still gives one job.
        assert_eq!(jobs_for(0, None), 1);
    }

    #[test]
    fn mem_available_reads_kib() {
        assert_eq!(mem_available(&meminfo(2048)), Some(2048 * 1024));
        assert_eq!(mem_available("MemAvailable: 7\n"), Some(7 * 1024));
        // `MemAvailableX` is not the line.
        assert_eq!(mem_available("MemAvailableX: 7 kB\n"), None);
    }

    #[test]
    fn default_jobs_is_between_one_and_the_cpu_count() {
        // MemAvailable moves between reads, so only the bounds of the rule are stable here; the
        // rule itself is tested on fixed texts above.
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let jobs = default_jobs();
        assert!((1..=cpus).contains(&jobs), "{jobs} jobs on {cpus} CPUs");
    }
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Memory one concurrent `go build` may need at its peak (compiling and linking a large service);
/// used to cap the default job count on small machines.
pub const MEMORY_PER_JOB: u64 = 1 << 30;

/// The default global bound: the number of CPUs, capped so that jobs x [`MEMORY_PER_JOB`] fits in
/// the memory available now (Linux `MemAvailable`; other systems use the CPU count alone).
pub fn default_jobs() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    match mem_available() {
        Some(bytes) => cpus.min(
            usize::try_from(bytes / MEMORY_PER_JOB)
                .unwrap_or(usize::MAX)
                .max(1),
        ),
        None => cpus,
    }
}

fn mem_available() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `work` on every item with at most `bound` running at once, on plain threads, returning
/// results in input order. Items are taken in order, so callers put the longest work first.
pub fn run_bounded<T, R, F>(items: Vec<T>, bound: usize, work: F) -> Vec<R>
where
    T: Send,
    R: Send,
    F: Fn(T) -> R + Sync,
{
    let n = items.len();
    let queue: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    let results: Vec<Mutex<Option<R>>> = (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let threads = bound.max(1).min(n);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let item = queue[i].lock().ok().and_then(|mut q| q.take());
                if let Some(item) = item {
                    let r = work(item);
                    if let Ok(mut slot) = results[i].lock() {
                        *slot = Some(r);
                    }
                }
            });
        }
    });
    results
        .into_iter()
        .filter_map(|m| m.into_inner().ok().flatten())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    #[test]
    fn respects_bound_and_order() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let out = run_bounded((0..12).collect(), 3, |i: u32| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, (0..12).map(|i| i * 2).collect::<Vec<_>>());
        let p = peak.load(Ordering::SeqCst);
        assert!((2..=3).contains(&p), "peak concurrency {p}");
    }

    #[test]
    fn default_jobs_is_positive() {
        assert!(default_jobs() >= 1);
    }
}

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Runs `work` on every item with at most `bound` running at once, on plain threads, returning
/// results in input order. Items are taken in order, so callers put the longest work first.
///
/// It lives in the foundation crate because two stages need it (planning runs one `go list` per
/// build context, execution runs the compiles) and the plan must not depend on the executor.
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

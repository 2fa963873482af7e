//! A count of work done, for tests that prove linting is linear in the input without timing it.
//!
//! Loops over instructions, commands, stages and findings call [`tick`]; tests lint inputs of size n
//! and 2n and compare the counts. Outside tests `tick` compiles to nothing.

#[cfg(test)]
thread_local! {
    static STEPS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Records `n` units of work.
#[inline(always)]
pub(crate) fn tick(n: usize) {
    #[cfg(test)]
    STEPS.with(|s| s.set(s.get() + n));
    #[cfg(not(test))]
    let _ = n;
}

/// Returns the work recorded on this thread since the last call, and resets it.
#[cfg(test)]
pub(crate) fn take() -> usize {
    STEPS.with(|s| s.replace(0))
}

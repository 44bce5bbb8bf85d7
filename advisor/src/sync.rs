//! Mutex helpers shared by the engine, the observers and the advice book, and [`OwnLine`].

use std::sync::{Mutex, MutexGuard};

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A value on a cache line of its own (two, for CPUs that fetch lines in pairs): for what a
/// session's relay writes on every chunk while the observation thread, on another CPU, writes
/// the fields beside it.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct OwnLine<T>(pub T);

impl<T> std::ops::Deref for OwnLine<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

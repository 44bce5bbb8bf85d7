//! Detectors: each turns what the observers saw into [`crate::advice::Finding`]s, and keeps the
//! state it needs to do so; the engine only feeds them.

pub mod deadlock;
pub mod error_spike;
pub mod lock_contention;
pub mod lock_hazard_ddl;
pub mod missing_index;
pub mod n_plus_one;
pub mod repeated_query;
pub mod select_star;
pub mod session_checks;
pub mod slow_query;
pub mod transactions;
pub mod unbounded_result;
pub mod unparameterized;

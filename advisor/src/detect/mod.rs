//! Detectors: each turns what the observers saw into [`crate::advice::Finding`]s.

pub mod ddl;
pub mod deadlock;
pub mod error_spike;
pub mod lock_contention;
pub mod missing_index;
pub mod n_plus_one;
pub mod repeated_query;
pub mod select_star;
pub mod session_checks;
pub mod slow_query;
pub mod sql_shape;
pub mod transactions;
pub mod unbounded_result;
pub mod unparameterized;

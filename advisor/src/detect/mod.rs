//! Detectors: each turns what the observers saw into [`crate::advice::Finding`]s.

pub mod ddl;
pub mod deadlock;
pub mod lock_contention;
pub mod missing_index;
pub mod n_plus_one;
pub mod orm;
pub mod sql_shape;
pub mod transactions;

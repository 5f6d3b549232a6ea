//! Criterion benches and allocation-count tests for the palisade crates.
//!
//! Nothing here is published. The benches live in `benches/benches/`, one file per
//! subject; the allocation-count tests live in `benches/tests/` and use
//! [`allocation_counter`] (which installs a counting global allocator in this crate's
//! test and bench binaries). See `benches/README.md` for the results and how to
//! reproduce them.

pub use allocation_counter;

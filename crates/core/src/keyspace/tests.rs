//! Unit tests of the executor: edge cases, one per behaviour.

// `gen` is a reserved word in Rust 2024: the module is `generator`.
pub mod coverage;
pub mod edge_cases;
#[path = "gen.rs"]
pub mod generator;
pub mod resp;

// `gen` is a reserved word in Rust 2024: the module is `generator`.
#[path = "gen.rs"]
pub mod generator;
pub mod resp;

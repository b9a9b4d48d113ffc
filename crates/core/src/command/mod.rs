//! The command layer: what a client asks (an argument vector), what it
//! means (a typed [`Command`]), and what it is told (a [`Reply`]).
//!
//! - [`table`]: every command once: name, arity, flags, role, keys, parser.
//! - [`by_name`]: a table's rows found by name, in any case.
//! - [`command`]: the typed commands and their option types.
//! - [`parse`]: argument vectors to commands, with Redis's error words.
//! - [`reply`]: replies modelled on RESP3, written as RESP2 or RESP3.
//! - [`error`]: error replies.
//! - [`number`]: integers and floats as Redis reads and prints them.
//! - [`glob`]: KEYS/SCAN patterns.
//! - [`stream`]: the stream commands' typed form and parsers.
//! - [`geo`]: the geospatial commands' typed form and parsers.
//!
//! Executing a command against data is the [`crate::keyspace`]'s job.

pub mod by_name;
#[allow(clippy::module_inception)]
pub mod command;
pub mod error;
pub mod geo;
pub mod glob;
pub mod long_double;
pub mod number;
pub mod parse;
pub mod reply;
pub mod sort;
pub mod stream;
pub mod table;

pub use command::*;
pub use error::CommandError;
pub use reply::{Protocol, Reply};
pub use table::{COMMANDS, CommandSpec, Role, lookup, parse, resolve};

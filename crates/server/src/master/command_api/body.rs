//! Request bodies of the command routes: one command is a JSON array of
//! its name and arguments (`["HSET","k","f","v"]`); a pipeline or a
//! transaction is an array of them. Arguments are strings; numbers and
//! booleans are taken as their JSON text (`["EXPIRE","k",60]` sends `60`,
//! as Upstash's SDKs send numbers), so a number keeps the digits it was
//! written with.

use bytes::Bytes;
use serde_json::value::RawValue;
use thiserror::Error;

/// Why a body is not a command (or a list of them). The messages follow
/// `ERR ` in the answer.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BodyError {
    /// Not JSON at all.
    #[error("the body is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an array.
    #[error(
        "the body must be a JSON array: a command's name and arguments, as [\"SET\",\"k\",\"v\"]"
    )]
    NotACommand,
    /// An empty array.
    #[error("the command is empty: the array needs at least the command's name")]
    Empty,
    /// An argument that is null, an array or an object.
    #[error("argument {index} is {found}; arguments are strings, numbers or booleans")]
    BadArgument {
        /// Its position, 0 being the name.
        index: usize,
        /// What it is.
        found: &'static str,
    },
    /// A pipeline or transaction body that is not an array of arrays.
    #[error(
        "the body must be a JSON array of commands, each an array, as [[\"SET\",\"k\",\"v\"],[\"GET\",\"k\"]]"
    )]
    NotCommands,
    /// A pipeline or transaction without commands.
    #[error("no commands: the array is empty")]
    NoCommands,
    /// One command of a pipeline or transaction is malformed.
    #[error("command {index}: {error}")]
    InCommand {
        /// Its position, from 0.
        index: usize,
        /// What is wrong with it.
        error: Box<BodyError>,
    },
}

/// One command's arguments.
pub fn command(body: &[u8]) -> Result<Vec<Bytes>, BodyError> {
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    command_of(raw)
}

/// The commands of a pipeline or transaction body.
pub fn commands(body: &[u8]) -> Result<Vec<Vec<Bytes>>, BodyError> {
    let raw: &RawValue =
        serde_json::from_slice(body).map_err(|e| BodyError::NotJson(e.to_string()))?;
    let items: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|_| BodyError::NotCommands)?;
    if items.is_empty() {
        return Err(BodyError::NoCommands);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            command_of(item).map_err(|e| match e {
                BodyError::NotACommand => BodyError::NotCommands,
                e => BodyError::InCommand {
                    index,
                    error: Box::new(e),
                },
            })
        })
        .collect()
}

fn command_of(raw: &RawValue) -> Result<Vec<Bytes>, BodyError> {
    let items: Vec<&RawValue> =
        serde_json::from_str(raw.get()).map_err(|_| BodyError::NotACommand)?;
    if items.is_empty() {
        return Err(BodyError::Empty);
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| argument(index, item))
        .collect()
}

fn argument(index: usize, raw: &RawValue) -> Result<Bytes, BodyError> {
    let text = raw.get();
    let bad = |found| BodyError::BadArgument { index, found };
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text)
            .map(Bytes::from)
            .map_err(|_| bad("a malformed string")),
        // A number or a boolean: its text, as written.
        Some(b'-' | b'0'..=b'9' | b't' | b'f') => Ok(Bytes::copy_from_slice(text.as_bytes())),
        Some(b'n') => Err(bad("null")),
        Some(b'[') => Err(bad("an array")),
        Some(b'{') => Err(bad("an object")),
        _ => Err(bad("not a JSON value")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(body: &str) -> Result<Vec<String>, BodyError> {
        command(body.as_bytes()).map(|a| {
            a.iter()
                .map(|b| String::from_utf8(b.to_vec()).unwrap())
                .collect()
        })
    }

    #[test]
    fn strings_numbers_and_booleans_are_arguments() {
        assert_eq!(
            args(r#"["SET", "k", "v\u00e9", 10, -1.5e3, true, false]"#).unwrap(),
            ["SET", "k", "vé", "10", "-1.5e3", "true", "false"]
        );
        assert_eq!(args(r#"  ["PING"]  "#).unwrap(), ["PING"]);
    }

    #[test]
    fn malformed_commands_say_what_is_wrong() {
        assert!(matches!(args("[\"GET\""), Err(BodyError::NotJson(_))));
        assert_eq!(args(r#"{"cmd":"GET"}"#), Err(BodyError::NotACommand));
        assert_eq!(args(r#""GET""#), Err(BodyError::NotACommand));
        assert_eq!(args("[]"), Err(BodyError::Empty));
        assert_eq!(
            args(r#"["GET", null]"#),
            Err(BodyError::BadArgument {
                index: 1,
                found: "null"
            })
        );
        assert_eq!(
            args(r#"["SET", "k", {"a": 1}]"#),
            Err(BodyError::BadArgument {
                index: 2,
                found: "an object"
            })
        );
    }

    #[test]
    fn pipelines_are_arrays_of_commands() {
        let cmds = commands(br#"[["SET","k",1],["GET","k"]]"#).unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0][2], Bytes::from_static(b"1"));
        assert_eq!(commands(b"[]"), Err(BodyError::NoCommands));
        assert_eq!(commands(br#"["GET","k"]"#), Err(BodyError::NotCommands));
        assert_eq!(
            commands(br#"[["GET","k"],[]]"#),
            Err(BodyError::InCommand {
                index: 1,
                error: Box::new(BodyError::Empty)
            })
        );
        assert_eq!(
            commands(br#"[["GET","k"],[]]"#).unwrap_err().to_string(),
            "command 1: the command is empty: the array needs at least the command's name"
        );
    }
}

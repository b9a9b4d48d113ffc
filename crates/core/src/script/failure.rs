//! The errors the Rust side raises inside Lua, and how they read.
//!
//! A Rust function raises an error as mlua wraps it, not as a Lua value,
//! so what kind of error it was travels in its type:
//!
//! - [`CommandFailure`]: a command's error from `redis.call`, or an error
//!   Redis raises as a reply (`redis.setresp(4)`): its text is the whole
//!   error reply (`WRONGTYPE ...`), before Redis's ` script: ...` suffix.
//! - [`LuaFailure`]: an error Lua's own library would raise (a bad
//!   argument to `bit.band`), its text led by where it happened
//!   (`user_script:1: `), as `luaL_error` writes it; Redis puts `ERR`
//!   before it.

use mlua::Lua;

/// A command's error raised by `redis.call` (see the module).
#[derive(Debug)]
pub(super) struct CommandFailure(pub String);

/// A library's error (see the module).
#[derive(Debug)]
pub(super) struct LuaFailure(pub String);

impl std::fmt::Display for CommandFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CommandFailure {}

impl std::fmt::Display for LuaFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LuaFailure {}

/// Raises `text` as a [`CommandFailure`].
pub(super) fn command_failure(text: impl Into<String>) -> mlua::Error {
    mlua::Error::external(CommandFailure(text.into()))
}

/// Raises `text` as a [`LuaFailure`], led by the place in the script that
/// called the function raising it.
pub(super) fn lua_failure(lua: &Lua, text: impl std::fmt::Display) -> mlua::Error {
    let place = lua
        .inspect_stack(1, |debug| {
            match (debug.source().short_src, debug.current_line()) {
                (Some(src), Some(line)) => format!("{src}:{line}: "),
                _ => String::new(),
            }
        })
        .unwrap_or_default();
    mlua::Error::external(LuaFailure(format!("{place}{text}")))
}

/// How an error raised in Lua reads: as Lua's `pcall` hands it over
/// (`ERR` first only when `reply`, the error reply of a script that
/// failed with it).
pub(super) fn text_of(e: &mlua::Error, reply: bool) -> String {
    if let Some(CommandFailure(text)) = e.downcast_ref::<CommandFailure>() {
        return text.clone();
    }
    let text = match e.downcast_ref::<LuaFailure>() {
        Some(LuaFailure(text)) => text.clone(),
        None => root_message(e),
    };
    if reply { format!("ERR {text}") } else { text }
}

/// What went wrong, without the tracebacks mlua adds on the way out of a
/// Rust function.
pub(super) fn root_message(e: &mlua::Error) -> String {
    match e {
        mlua::Error::CallbackError { cause, .. } => root_message(cause),
        mlua::Error::RuntimeError(message) => message.clone(),
        other => other.to_string(),
    }
}

//! One Lua VM, sandboxed as Redis's (`prelude.lua`), and how a script
//! runs in it: compiled once per VM, given `KEYS` and `ARGV`, its
//! `redis.call` wired to the lent keyspace for the length of the run, and
//! stopped at [`super::time_limit`].

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Instant;

use bytes::Bytes;
use mlua::{
    Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, Variadic, VmState,
    chunk::ChunkMode,
};
use rand::RngCore;

use super::failure::{command_failure, lua_failure, root_message, text_of};
use super::{convert, libs, sha1_hex, time_limit};
use crate::command::number::format_double;
use crate::command::table::one_line;
use crate::command::table::{self, flags};
use crate::command::{Command, CommandError, Reply};
use crate::keyspace::{Effect, Keyspace};
use crate::value::stored;

/// Compiled scripts one VM keeps, at most; past it, it forgets them all.
const MAX_FUNCTIONS: usize = 1000;

/// Bytes of source of the compiled scripts one VM keeps, at most (their
/// compiled form counts against the VM's memory limit); past it, as past
/// [`MAX_FUNCTIONS`].
const MAX_FUNCTION_BYTES: usize = 8 << 20;

/// The version `redis.REDIS_VERSION` reports: the one RESP's INFO does.
const VERSION: &str = "7.2.0";
const VERSION_NUM: i64 = 0x0007_0200;

/// Memory a VM may keep between scripts before a full collection.
const KEEP_MEMORY: usize = 16 << 20;

/// Keys and arguments passed to the runner as its own arguments, at most
/// (Lua 5.1 takes about 8,000 in one call); past it they go as tables.
const MAX_SPREAD: usize = 4000;

/// Instructions between two checks of the clock.
const CHECK_EVERY: u32 = 10_000;

/// What a run knows of its command.
pub(super) struct Context<'a> {
    pub keys: &'a [Bytes],
    pub args: &'a [Bytes],
    pub read_only: bool,
    pub now_ms: u64,
}

/// The running script's clock, where the hook and `killed` find it: no
/// deadline between runs (the prelude runs without one).
struct Run {
    deadline: Option<Instant>,
    killed: bool,
}

/// A VM and the scripts it has compiled.
pub(super) struct Vm {
    lua: Lua,
    /// Compiled scripts by source.
    functions: HashMap<Bytes, Function>,
    /// The bytes of their sources.
    function_bytes: usize,
    /// `redis.setresp`'s version: 2 or 3.
    resp: Arc<AtomicU8>,
    /// The globals scripts see (`prelude.lua`): what each compiled
    /// script's environment is.
    env: Table,
    /// The prelude's `run`: sets up a run, calls the script with its
    /// error handler, and says whether the run left the VM clean.
    runner: Function,
    /// The error handler: the error, with the script's line.
    handler: Function,
}

impl Vm {
    /// A new VM with Redis's environment.
    pub(super) fn new() -> mlua::Result<Vm> {
        let lua = Lua::new_with(
            StdLib::TABLE | StdLib::STRING | StdLib::MATH,
            LuaOptions::default(),
        )?;
        lua.set_memory_limit(super::MEMORY_LIMIT)?;
        lua.set_app_data(Run {
            deadline: None,
            killed: false,
        });
        // Every so many instructions, and at every call (a C function such
        // as table.sort can run long on few instructions); global, so that
        // the coroutines `create` makes have it too.
        lua.set_global_hook(
            HookTriggers::new()
                .every_nth_instruction(CHECK_EVERY)
                .on_calls(),
            |lua, _| {
                let mut run = lua
                    .app_data_mut::<Run>()
                    .ok_or_else(|| mlua::Error::runtime("no run"))?;
                if run.killed || run.deadline.is_some_and(|at| Instant::now() >= at) {
                    run.killed = true;
                    return Err(mlua::Error::runtime("script killed"));
                }
                Ok(VmState::Continue)
            },
        )?;
        let rust = lua.create_table()?;
        rust.raw_set(
            "create",
            lua.create_function(|lua, f: Value| match f {
                Value::Function(f) => lua.create_thread(f),
                other => Err(lua_failure(
                    lua,
                    format!(
                        "bad argument #1 to 'create' (Lua function expected, got {})",
                        other.type_name()
                    ),
                )),
            })?,
        )?;
        rust.raw_set(
            "failure_text",
            lua.create_function(|lua, failure: Value| match &failure {
                Value::Error(e) => Ok(Value::String(lua.create_string(text_of(e, false))?)),
                _ => Ok(failure),
            })?,
        )?;
        rust.raw_set(
            "killed",
            lua.create_function(|lua, ()| {
                Ok(lua.app_data_ref::<Run>().is_some_and(|run| run.killed))
            })?,
        )?;
        let resp = Arc::new(AtomicU8::new(2));
        rust.raw_set(
            "sha1hex",
            lua.create_function(|lua, values: Variadic<Value>| {
                let [value] = values.as_slice() else {
                    return Err(command_failure("ERR wrong number of arguments"));
                };
                let text = lua.coerce_string(value.clone())?;
                Ok(sha1_hex(
                    &text.map(|t| t.as_bytes().to_vec()).unwrap_or_default(),
                ))
            })?,
        )?;
        let setresp = resp.clone();
        rust.raw_set(
            "setresp",
            lua.create_function(move |lua, version: Value| {
                let version = lua.coerce_number(version).ok().flatten().unwrap_or(0.0);
                if version != 2.0 && version != 3.0 {
                    return Err(command_failure("ERR RESP version must be 2 or 3."));
                }
                setresp.store(version as u8, Ordering::Relaxed);
                Ok(())
            })?,
        )?;
        // Checked as Redis checks it; what it would log goes nowhere.
        rust.raw_set(
            "log",
            lua.create_function(|lua, values: Variadic<Value>| {
                if values.len() < 2 {
                    return Err(command_failure(
                        "ERR redis.log() requires two arguments or more.",
                    ));
                }
                let Some(level) = lua.coerce_number(values[0].clone())? else {
                    return Err(command_failure(
                        "ERR First argument must be a number (log level).",
                    ));
                };
                if !(0.0..4.0).contains(&level) {
                    return Err(command_failure("ERR Invalid debug level."));
                }
                Ok(())
            })?,
        )?;
        // As Redis's: one string, else the error table (returned, not
        // raised) of a wrong call.
        for (name, field) in [("error_reply", "err"), ("status_reply", "ok")] {
            rust.raw_set(
                name,
                lua.create_function(move |lua, args: mlua::MultiValue| {
                    let text = match (args.len(), args.front()) {
                        (1, Some(Value::String(text))) => text.as_bytes().to_vec(),
                        _ => return err_table(lua, "ERR wrong number or type of arguments"),
                    };
                    let text = match field {
                        "err" => error_reply_text(&text),
                        _ => text,
                    };
                    let t = lua.create_table()?;
                    t.raw_set(field, lua.create_string(&text)?)?;
                    Ok(Value::Table(t))
                })?,
            )?;
        }
        rust.raw_set("bit", libs::bit(&lua)?)?;
        rust.raw_set("cjson", libs::cjson(&lua)?)?;
        rust.raw_set("cmsgpack", libs::cmsgpack(&lua)?)?;
        rust.raw_set("version", VERSION)?;
        rust.raw_set("version_num", VERSION_NUM)?;
        let (runner, env): (Function, Table) = lua
            .load(include_str!("prelude.lua"))
            .set_name("=prelude")
            .call(rust)?;
        lua.set_globals(env.clone())?;
        let handler = lua.create_function(|lua, error: Value| error_with_line(lua, error))?;
        Ok(Vm {
            lua,
            functions: HashMap::new(),
            function_bytes: 0,
            env,
            resp,
            runner,
            handler,
        })
    }

    /// Runs `source` over `ks` and answers its reply, and whether the VM
    /// may serve another script (`false`: the script left something
    /// behind, or failed in a way that leaves the VM in doubt).
    pub(super) fn run(
        &mut self,
        source: &Bytes,
        context: &Context<'_>,
        ks: &mut Keyspace,
        rng: &mut dyn RngCore,
        effects: &mut Vec<Effect>,
    ) -> (Reply, bool) {
        let function = match self.compile(source) {
            Ok(f) => f,
            Err(message) => return (Reply::Error(compile_error(message)), true),
        };
        match self.call(&function, context, ks, rng, effects) {
            Ok((Ok(value), clean)) => {
                let resp3 = self.resp.load(Ordering::Relaxed) == 3;
                (convert::to_reply(&value, resp3), clean)
            }
            Ok((Err(failure), clean)) => {
                let killed = self.killed();
                (error(failure.message(&sha1_hex(source), killed)), clean)
            }
            // Past its time, the hook stops the runner too, before it has
            // put the VM back in order: the VM is dropped.
            Err(_) if self.killed() => (error(killed_message(&sha1_hex(source))), false),
            Err(e) => (
                error(format!("ERR Error running script: {}", root_message(&e))),
                false,
            ),
        }
    }

    /// Whether the last run was stopped at its time limit.
    fn killed(&self) -> bool {
        self.lua.app_data_ref::<Run>().is_some_and(|run| run.killed)
    }

    /// The compiled `source`, or the compiler's message.
    pub(super) fn compile(&mut self, source: &Bytes) -> Result<Function, String> {
        if let Some(f) = self.functions.get(source) {
            return Ok(f.clone());
        }
        // A shebang line (checked by the caller) is left out, its newline
        // kept.
        let skipped = super::shebang(source).map_or(0, |(_, len)| len);
        let compiled = self
            .lua
            .load(&source[skipped..])
            .set_name("@user_script")
            .set_environment(self.env.clone())
            .set_mode(ChunkMode::Text)
            .into_function();
        let f = compiled.map_err(|e| match e {
            mlua::Error::SyntaxError { message, .. } => message,
            other => other.to_string(),
        })?;
        if self.functions.len() >= MAX_FUNCTIONS
            || self.function_bytes + source.len() > MAX_FUNCTION_BYTES
        {
            self.functions.clear();
            self.function_bytes = 0;
        }
        self.function_bytes += source.len();
        // A copy: `source` is a slice of its request's frame, which it
        // would keep alive.
        self.functions
            .insert(Bytes::copy_from_slice(source), f.clone());
        Ok(f)
    }

    /// One run of `function`: its value, or how it failed.
    fn call(
        &self,
        function: &Function,
        context: &Context<'_>,
        ks: &mut Keyspace,
        rng: &mut dyn RngCore,
        effects: &mut Vec<Effect>,
    ) -> mlua::Result<(Result<Value, Failure>, bool)> {
        let lua = &self.lua;
        self.resp.store(2, Ordering::Relaxed);
        if let Some(mut run) = lua.app_data_mut::<Run>() {
            run.deadline = Some(Instant::now() + time_limit());
            run.killed = false;
        }
        // `redis.call` and `redis.pcall` share the keyspace; neither runs
        // while the other does (a command calls no Lua).
        let lent = RefCell::new((ks, rng, effects));
        let resp = &self.resp;
        let command = |lua: &Lua, values: MultiValue| -> mlua::Result<Result<Value, String>> {
            let resp3 = resp.load(Ordering::Relaxed) == 3;
            let mut lent = lent.borrow_mut();
            let (ks, rng, effects) = &mut *lent;
            let reply = arguments(values)
                .and_then(|args| run_command(context, &args, ks, &mut **rng, effects));
            Ok(match reply {
                Ok(Reply::Error(e)) => Err(e.to_string()),
                Ok(reply) => Ok(convert::to_lua(lua, &reply, resp3)?),
                Err(text) => Err(text),
            })
        };
        // KEYS and ARGV go as the runner's arguments, unless there are
        // more than a call takes: then as tables.
        let (keys, argv, spread) = if context.keys.len() + context.args.len() <= MAX_SPREAD {
            (Value::Nil, Value::Nil, true)
        } else {
            (
                Value::Table(strings(lua, context.keys)?),
                Value::Table(strings(lua, context.args)?),
                false,
            )
        };
        let mut values =
            MultiValue::with_capacity(7 + MAX_SPREAD.min(context.keys.len() + context.args.len()));
        let outcome = lua.scope(|scope| {
            let call = scope.create_function(|lua, values: MultiValue| {
                command(lua, values)?.map_err(command_failure)
            })?;
            let pcall = scope.create_function(|lua, values: MultiValue| {
                Ok(match command(lua, values)? {
                    Ok(value) => value,
                    Err(text) => err_table(lua, &text)?,
                })
            })?;
            values.push_back(Value::Function(function.clone()));
            values.push_back(Value::Function(self.handler.clone()));
            values.push_back(Value::Function(call));
            values.push_back(Value::Function(pcall));
            values.push_back(keys);
            values.push_back(argv);
            values.push_back(Value::Integer(context.keys.len() as i64));
            if spread {
                for item in context.keys.iter().chain(context.args) {
                    values.push_back(Value::String(lua.create_string(item)?));
                }
            }
            let (ok, value, clean): (bool, Value, bool) = self.runner.call(values)?;
            Ok((
                if ok {
                    Ok(value)
                } else {
                    Err(Failure::from(value))
                },
                clean,
            ))
        });
        if let Some(mut run) = lua.app_data_mut::<Run>() {
            run.deadline = None;
        }
        // A VM goes back to the pool: what a large script left is freed
        // now rather than when the next one allocates.
        if lua.used_memory() > KEEP_MEMORY {
            lua.gc_collect()?;
        }
        outcome
    }
}

/// A script's error, as the handler left it.
struct Failure {
    /// The error's text (`ERR ...` for Lua's own errors).
    text: String,
    /// The script's line where it happened, when known.
    line: Option<i64>,
}

impl From<Value> for Failure {
    fn from(value: Value) -> Failure {
        match value {
            Value::Table(t) => Failure {
                text: t
                    .raw_get::<Option<mlua::LuaString>>("err")
                    .ok()
                    .flatten()
                    .map_or_else(|| "ERR unknown error".to_string(), |s| s.to_string_lossy()),
                line: t.raw_get::<Option<i64>>("line").ok().flatten(),
            },
            // Errors the handler did not see (Lua 5.1 calls no handler
            // when memory runs out).
            Value::String(s) => Failure {
                text: format!("ERR {}", s.to_string_lossy()),
                line: None,
            },
            other => Failure {
                text: format!("ERR the script failed with a {}", other.type_name()),
                line: None,
            },
        }
    }
}

impl Failure {
    /// Redis's error reply for a script that failed.
    fn message(&self, sha: &str, killed: bool) -> String {
        if killed {
            return killed_message(sha);
        }
        match self.line {
            Some(line) => format!("{} script: {sha}, on @user_script:{line}.", self.text),
            None => format!("{} script: {sha}", self.text),
        }
    }
}

/// The answer to a script stopped at its time limit.
fn killed_message(sha: &str) -> String {
    format!(
        "ERR Script killed: it ran for longer than {} ms (distcache stops a script at its time limit; the writes it made before are kept) script: {sha}",
        time_limit().as_millis()
    )
}

/// The error handler: a table `{err = text, line = n}`, where `n` is the
/// line of the script the error came from (the first frame of the
/// script's own code on the stack). An error raised with a string is
/// Lua's, and gets Redis's `ERR` before it.
fn error_with_line(lua: &Lua, error: Value) -> mlua::Result<Table> {
    let mut line = None;
    for level in 1..64 {
        let Some(found) = lua.inspect_stack(level, |debug| {
            let ours = debug.source().source.as_deref() == Some("@user_script");
            (ours, debug.current_line())
        }) else {
            break;
        };
        if let (true, Some(n)) = found {
            line = Some(n);
            break;
        }
    }
    let text = match &error {
        Value::Table(t) => match t.raw_get::<Value>("err")? {
            Value::String(s) => s.to_string_lossy(),
            _ => "ERR the script raised a table with no 'err' field".to_string(),
        },
        Value::String(s) => format!("ERR {}", s.to_string_lossy()),
        Value::Error(e) => text_of(e, true),
        Value::Nil => "ERR the script raised nil".to_string(),
        other => format!(
            "ERR {}",
            lua.coerce_string(other.clone())?.map_or_else(
                || format!("the script raised a {}", other.type_name()),
                |s| s.to_string_lossy(),
            )
        ),
    };
    let failure = lua.create_table()?;
    failure.raw_set("err", text)?;
    if let Some(line) = line {
        failure.raw_set("line", line)?;
    }
    Ok(failure)
}

/// A Lua sequence of `items`.
fn strings(lua: &Lua, items: &[Bytes]) -> mlua::Result<Table> {
    let t = lua.create_table_with_capacity(items.len(), 0)?;
    for (i, item) in items.iter().enumerate() {
        t.raw_seti(i + 1, lua.create_string(item)?)?;
    }
    Ok(t)
}

/// What `redis.error_reply(text)` keeps, as Redis makes it: the text
/// without one leading `-`, its first word the error code (`ERR` when it
/// has one word only), the rest the message, without line ends around it.
fn error_reply_text(text: &[u8]) -> Vec<u8> {
    let rest = text.strip_prefix(b"-").unwrap_or(text);
    let (code, message) = match rest.iter().position(|&b| b == b' ') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (&b"ERR"[..], rest),
    };
    let line_end = |b: &u8| *b == b'\r' || *b == b'\n';
    let start = message
        .iter()
        .position(|b| !line_end(b))
        .unwrap_or(message.len());
    let end = message
        .iter()
        .rposition(|b| !line_end(b))
        .map_or(start, |at| at + 1);
    [code, b" ", &message[start..end]].concat()
}

/// `{err = text}`: how a command's error reaches Lua.
fn err_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", text)?;
    Ok(Value::Table(t))
}

/// Redis's error for a script that does not compile.
pub(super) fn compile_error(message: String) -> CommandError {
    CommandError::Relayed(one_line(&format!(
        "ERR Error compiling script (new function): {message}"
    )))
}

/// An error reply: one line, as Redis makes every error (CR and LF
/// become spaces).
fn error(text: String) -> Reply {
    Reply::Error(CommandError::Relayed(one_line(&text)))
}

/// `redis.call`'s arguments as a command's: strings, and numbers as Redis
/// writes them (`%.17g`).
fn arguments(values: MultiValue) -> Result<Vec<Bytes>, String> {
    if values.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call".into());
    }
    let mut args = Vec::with_capacity(values.len());
    for value in values {
        let text = match value {
            Value::String(s) => s,
            // As Redis writes a number for a command: `%.17g`, not
            // Lua's `%.14g`, which would round 16-digit integers.
            Value::Integer(n) => {
                args.push(Bytes::from(format_double(n as f64)));
                continue;
            }
            Value::Number(n) => {
                args.push(Bytes::from(format_double(n)));
                continue;
            }
            _ => return Err(not_an_argument()),
        };
        args.push(Bytes::copy_from_slice(&text.as_bytes()));
    }
    Ok(args)
}

fn not_an_argument() -> String {
    "ERR Lua redis lib command arguments must be strings or integers".into()
}

/// One `redis.call`: the checks Redis makes for a script's command, ours
/// for a script that runs where its keys live, then the command on the
/// lent keyspace.
fn run_command(
    context: &Context<'_>,
    args: &[Bytes],
    ks: &mut Keyspace,
    rng: &mut dyn RngCore,
    effects: &mut Vec<Effect>,
) -> Result<Reply, String> {
    if let Some(answer) = answered_in_script(context, args) {
        return answer;
    }
    let spec = table::lookup(&args[0]).ok_or("ERR Unknown Redis command called from script")?;
    if !spec.arity_ok(args.len()) {
        return Err("ERR Wrong number of args calling Redis command from script".into());
    }
    // A container's subcommand is looked up and its arity checked, as
    // Redis does for a script (OBJECT FREQ without its key is refused).
    if spec.has(flags::CONTAINER) {
        match table::resolve(args) {
            Err(CommandError::WrongArity(_)) => {
                return Err("ERR Wrong number of args calling Redis command from script".into());
            }
            Err(_) => return Err("ERR Unknown Redis command called from script".into()),
            Ok(_) => {}
        }
    }
    if matches!(spec.name, "publish" | "spublish") {
        return Err(format!(
            "ERR {} is not allowed from a script: distcache runs a script where its keys live, and publishing belongs to the masters",
            spec.name.to_uppercase()
        ));
    }
    // XREAD and XREADGROUP read at once in a script; only their BLOCK
    // option is refused, as Redis does.
    let stream_read = matches!(spec.name, "xread" | "xreadgroup");
    if stream_read && (spec.parse)(args).is_ok_and(|c| c.block_timeout_ms().is_some()) {
        return Err(format!(
            "ERR {} command is not allowed with BLOCK option from scripts",
            spec.name.to_uppercase()
        ));
    }
    let refused = flags::TRANSACTION
        | flags::SUBSCRIPTION
        | flags::SCRIPTING
        | flags::PUBSUB
        | if stream_read { 0 } else { flags::BLOCKING };
    if spec.has(refused) {
        return Err("ERR This Redis command is not allowed from script".into());
    }
    if spec.has(flags::ADMIN) || matches!(spec.name, "keys" | "scan" | "dbsize" | "randomkey") {
        return Err(format!(
            "ERR {} is not allowed from a script: it asks every node, and distcache runs a script where its keys live",
            spec.name.to_uppercase()
        ));
    }
    // PFCOUNT (`may_replicate`) counts as a write here, as in Redis 7.0.
    if context.read_only && spec.has(flags::WRITE) {
        return Err("ERR Write commands are not allowed from read-only scripts.".into());
    }
    for i in spec.key_positions(args) {
        if !context.keys.contains(&args[i]) {
            return Err(format!(
                "ERR Script attempted to access key '{}', which it did not declare: distcache runs a script where its declared keys live and lets it touch only those (pass every key in KEYS)",
                String::from_utf8_lossy(&args[i])
            ));
        }
    }
    let mut command = (spec.parse)(args).map_err(|e| e.to_string())?;
    if let Command::Sort { options, .. } = &mut command {
        options.from_script = true;
    }
    let reply = ks.execute_into(&command, context.now_ms, rng, effects);
    // A value past the limit stops the script here, before it grows more
    // (the whole script is then refused, nothing of it kept).
    if let Some(limit) = ks.value_limit()
        && spec.has(flags::WRITE)
        && spec.key_positions(args).any(|i| {
            ks.get(&args[i])
                .is_some_and(|entry| stored::limited_len(&entry.value) > limit)
        })
    {
        return Err(crate::keyspace::value_too_large().to_string());
    }
    Ok(reply)
}

/// PING, ECHO and TIME, which need no key and no node.
fn answered_in_script(context: &Context<'_>, args: &[Bytes]) -> Option<Result<Reply, String>> {
    let name = args[0].to_ascii_lowercase();
    Some(Ok(match (name.as_slice(), args.len()) {
        (b"ping", 1) => Reply::Status("PONG".into()),
        (b"ping", 2) | (b"echo", 2) => Reply::Bulk(args[1].clone()),
        (b"time", 1) => Reply::Array(vec![
            Reply::bulk((context.now_ms / 1000).to_string().as_bytes()),
            Reply::bulk(((context.now_ms % 1000) * 1000).to_string().as_bytes()),
        ]),
        (b"ping" | b"echo" | b"time", _) => {
            return Some(Err(
                "ERR Wrong number of args calling Redis command from script".into(),
            ));
        }
        _ => return None,
    }))
}

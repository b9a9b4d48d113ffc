-- The environment every script runs in, built once per Lua VM
-- (crates/core/src/script/vm.rs). It makes Redis 7's: the libraries a
-- script may use, the `redis` table, and globals that are read-only, so
-- that one script can leave nothing behind for the next to find.
--
-- `rust` holds what the Rust side provides: `killed` (whether the run is
-- past its time), `failure_text` (a command's error as its text),
-- `create` (a coroutine the time limit reaches), the `redis` functions
-- that may raise an error, `bit` and `cjson`, and the version. Those
-- functions, and `redis.call` and `redis.pcall` (set for each run), are
-- Rust's, C functions to Lua, so that an error they raise still has the
-- script's line on the stack after `return redis.call(...)`, a tail call.
--
-- The globals a script sees are an empty table whose reads fall through
-- to `base`, the table that holds them (and KEYS and ARGV, set for each
-- run): every assignment to a global, an existing one included, meets
-- `__newindex` and is refused, as Redis's read-only globals refuse it.

local rust = ...
local G = _G
local error, type, select, tostring, ipairs, pairs, next =
  error, type, select, tostring, ipairs, pairs, next
local setmetatable, getmetatable = setmetatable, getmetatable
local real_rawset, real_pcall, real_xpcall = rawset, pcall, xpcall
local real_loadstring, real_resume, concat = loadstring, coroutine.resume, table.concat
local real_insert, real_remove, real_sort = table.insert, table.remove, table.sort
local real_setfenv = setfenv
-- The globals scripts see (below); chunks loaded by a script get them too.
local env = {}
local killed, failure_text, create = rust.killed, rust.failure_text, rust.create

-- Read-only tables: the globals and every library table.
local protected = setmetatable({}, { __mode = 'k' })
local function refuse()
  error('Attempt to modify a readonly table', 2)
end
local function readonly(t)
  local proxy = setmetatable({}, { __index = t, __newindex = refuse, __metatable = false })
  protected[proxy] = true
  return proxy
end
local function writable(t)
  if protected[t] then
    error('Attempt to modify a readonly table', 3)
  end
  return t
end

-- A `redis.call` error, as Lua code that catches it sees it: Redis's
-- pcall hands over its message, an xpcall handler and a failed resume
-- the table `{err = message}`.
local function as_table(e)
  if type(e) == 'userdata' then
    return { err = failure_text(e) }
  end
  return e
end

-- A script out of time stops even if it catches the error: whatever
-- catches one raises it again.
local function unless_killed(...)
  if killed() then
    error('script killed', 0)
  end
  return ...
end
local function caught(ok, ...)
  if killed() then
    error('script killed', 0)
  end
  if not ok then
    local e = ...
    if type(e) == 'table' and type(e.err) == 'string' then
      return false, e.err
    end
    if type(e) == 'userdata' then
      return false, failure_text(e)
    end
  end
  return ok, ...
end
local function resumed(ok, ...)
  if killed() then
    error('script killed', 0)
  end
  if not ok then
    return false, as_table((...))
  end
  return ok, ...
end

-- Source only: a crafted bytecode chunk can break the VM.
local function guarded_loadstring(chunk, name)
  if type(chunk) == 'string' and chunk:byte(1) == 27 then
    return nil, 'loading bytecode is not allowed'
  end
  local f, e = real_loadstring(chunk, name)
  if f then
    real_setfenv(f, env)
  end
  return f, e
end
local function guarded_load(chunk, name)
  if type(chunk) == 'function' then
    local parts = {}
    while true do
      local part = chunk()
      if part == nil or part == '' then
        break
      end
      parts[#parts + 1] = part
    end
    chunk = concat(parts)
  end
  return guarded_loadstring(chunk, name)
end

local redis = {
  error_reply = rust.error_reply,
  status_reply = rust.status_reply,
  sha1hex = rust.sha1hex,
  setresp = rust.setresp,
  -- Its arguments checked; distcache keeps no log of scripts' messages.
  log = rust.log,
  -- Effects are what is replicated, always.
  set_repl = function() end,
  replicate_commands = function() return true end,
  breakpoint = function() return false end,
  debug = function() end,
  LOG_DEBUG = 0, LOG_VERBOSE = 1, LOG_NOTICE = 2, LOG_WARNING = 3,
  REPL_NONE = 0, REPL_AOF = 1, REPL_SLAVE = 2, REPL_REPLICA = 2, REPL_ALL = 3,
  REDIS_VERSION = rust.version,
  REDIS_VERSION_NUM = rust.version_num,
}

-- Coroutines made by Rust, so that the time limit's hook runs in them too.
local co = {}
for name, f in pairs(coroutine) do
  co[name] = f
end
co.create = create
co.resume = function(thread, ...)
  return resumed(real_resume(thread, ...))
end
co.wrap = function(f)
  local thread = create(f)
  return function(...)
    return (function(ok, ...)
      if killed() then
        error('script killed', 0)
      end
      if not ok then
        error((...), 0)
      end
      return ...
    end)(real_resume(thread, ...))
  end
end

-- table.insert, remove and sort write without metamethods.
local tables = {}
for name, f in pairs(table) do
  tables[name] = f
end
tables.insert = function(t, ...)
  return real_insert(writable(t), ...)
end
tables.remove = function(t, ...)
  return real_remove(writable(t), ...)
end
tables.sort = function(t, ...)
  return real_sort(writable(t), ...)
end

local base = {}
for name, value in pairs(G) do
  base[name] = value
end
for _, name in ipairs({ 'print', 'dofile', 'loadfile', 'getfenv', 'setfenv', 'module',
  'require', 'newproxy', 'package', 'os', 'io', 'debug' }) do
  base[name] = nil
end
base.pcall = function(...)
  return caught(real_pcall(...))
end
base.xpcall = function(f, handler)
  return unless_killed(real_xpcall(f, function(e)
    -- A handler is not called again for the error that stops a script
    -- out of time (it would run for as long again).
    if killed() then
      return e
    end
    return handler(as_table(e))
  end))
end
base.loadstring = guarded_loadstring
base.load = guarded_load
base.rawset = function(t, k, v)
  if protected[t] then
    -- Raised from C in Redis: no position before the message.
    error('Attempt to modify a readonly table', 0)
  end
  return real_rawset(t, k, v)
end
base.redis = readonly(redis)
base.string = readonly(string)
base.table = readonly(tables)
base.math = readonly(math)
base.coroutine = readonly(co)
base.bit = readonly(rust.bit)
base.cjson = readonly(rust.cjson)
base.cmsgpack = readonly(rust.cmsgpack)
local strings = getmetatable('')
strings.__index = base.string
strings.__metatable = false

base._G = env
protected[env] = true
setmetatable(base, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
})
setmetatable(env, { __index = base, __newindex = refuse, __metatable = false })

-- Whether a run left anything behind: a VM that is not clean is dropped.
local proxies = { env, base.redis, base.string, base.table, base.math, base.coroutine,
  base.bit, base.cjson, base.cmsgpack }
local function clean()
  for _, proxy in ipairs(proxies) do
    if next(proxy) ~= nil then
      return false
    end
  end
  return true
end

-- How Rust runs a script: `call` and `pcall` (the run's Rust functions)
-- put in place, `KEYS` and `ARGV` made (from the `nkeys` keys and the
-- arguments after them, or given as tables when there are too many for
-- a call), the script run with its error handler so that an error still
-- knows the line it came from, and all of it taken away again. Done here
-- rather than from Rust, where each table access is a protected call.
local function run(f, handler, call, pcall_, keys, argv, nkeys, ...)
  redis.call, redis.pcall = call, pcall_
  if keys == nil then
    local all = { ... }
    keys, argv = {}, {}
    for i = 1, nkeys do
      keys[i] = all[i]
    end
    for i = nkeys + 1, select('#', ...) do
      argv[i - nkeys] = all[i]
    end
  end
  base.KEYS, base.ARGV = keys, argv
  local ok, value = real_xpcall(f, handler)
  redis.call, redis.pcall = nil, nil
  base.KEYS, base.ARGV = nil, nil
  return ok, value, clean()
end
return run, env

-- The environment every script runs in, built once per Lua VM
-- (crates/core/src/script/vm.rs). It makes Redis 7's: the libraries a
-- script may use, the `redis` table, and globals that are read-only, so
-- that one script can leave nothing behind for the next to find.
--
-- `rust` holds what the Rust side provides: `killed` (whether the run is
-- past its time), `failure_text` (a command's error as its text), the
-- `redis` functions that may raise an error, `bit` and `cjson`, and the
-- version. Those functions, and `redis.call` and `redis.pcall` (set for
-- each run), are Rust's, C functions to Lua, so that an error they raise
-- still has the script's line on the stack after `return redis.call(...)`,
-- a tail call.

local rust = ...
local G = _G
local error, type, select, tostring, ipairs, pairs =
  error, type, select, tostring, ipairs, pairs
local setmetatable, getmetatable = setmetatable, getmetatable
local real_rawset, real_pcall, real_xpcall = rawset, pcall, xpcall
local real_loadstring, real_resume, concat = loadstring, coroutine.resume, table.concat
local killed, failure_text = rust.killed, rust.failure_text

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

-- A script out of time stops even if it catches the error: whatever
-- catches one raises it again.
local function unless_killed(...)
  if killed() then
    error('script killed', 0)
  end
  return ...
end
-- Redis's pcall hands a `redis.call` error over as its message.
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

-- Source only: a crafted bytecode chunk can break the VM.
local function guarded_loadstring(chunk, name)
  if type(chunk) == 'string' and chunk:byte(1) == 27 then
    return nil, 'loading bytecode is not allowed'
  end
  return real_loadstring(chunk, name)
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
  -- Accepted; distcache keeps no log of scripts' messages.
  log = function() end,
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

local co = {}
for name, f in pairs(coroutine) do
  co[name] = f
end
co.resume = function(...)
  return unless_killed(real_resume(...))
end

for _, name in ipairs({ 'print', 'dofile', 'loadfile', 'getfenv', 'setfenv', 'module',
  'require', 'newproxy', 'package', 'os', 'io', 'debug' }) do
  G[name] = nil
end
G.pcall = function(...)
  return caught(real_pcall(...))
end
G.xpcall = function(...)
  return unless_killed(real_xpcall(...))
end
G.loadstring = guarded_loadstring
G.load = guarded_load
G.rawset = function(t, k, v)
  if protected[t] then
    -- Raised from C in Redis: no position before the message.
    error('Attempt to modify a readonly table', 0)
  end
  return real_rawset(t, k, v)
end
G.redis = readonly(redis)
G.string = readonly(string)
G.table = readonly(table)
G.math = readonly(math)
G.coroutine = readonly(co)
G.bit = readonly(rust.bit)
G.cjson = readonly(rust.cjson)
local strings = getmetatable('')
strings.__index = G.string
strings.__metatable = false

protected[G] = true
setmetatable(G, {
  __index = function(_, name)
    error("Script attempted to access nonexistent global variable '" .. tostring(name) .. "'", 2)
  end,
  __newindex = refuse,
  __metatable = false,
})

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
  real_rawset(G, 'KEYS', keys)
  real_rawset(G, 'ARGV', argv)
  local ok, value = real_xpcall(f, handler)
  redis.call, redis.pcall = nil, nil
  real_rawset(G, 'KEYS', nil)
  real_rawset(G, 'ARGV', nil)
  return ok, value
end
return run

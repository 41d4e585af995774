-- The task driver, loaded once into every runtime before lua/dsl.lua and the user's file: task
-- coroutines, their hooks (deadline, interruption), blocking module calls, the `this` object of
-- Go-style functions, and making values valid UTF-8 before they leave Lua.
local host = ...

local type, error, tostring, select, setmetatable, rawget, ipairs, pairs, next =
      type, error, tostring, select, setmetatable, rawget, ipairs, pairs, next
local fmt = string.format
local getinfo, sethook, traceback = debug.getinfo, debug.sethook, debug.traceback
local co_create, co_resume, co_status, co_yield, co_running, co_isyieldable, co_close =
      coroutine.create, coroutine.resume, coroutine.status, coroutine.yield,
      coroutine.running, coroutine.isyieldable, coroutine.close
local check = host.check
local fs_cwd = host.cwd

local S = {}                       -- what Python sees (and lua/dsl.lua, loaded next, adds to)

---------------------------------------------------------------------------------------------
-- Values leaving Lua must be valid UTF-8: Python cannot decode anything else, and a task that
-- prints a binary byte must not fail for it. Invalid bytes become U+FFFD (as Python's
-- "replace" does); valid data is returned as is, without a copy.
---------------------------------------------------------------------------------------------
local utf8len = utf8.len

local function clean_string(s)
    if utf8len(s) then return s end
    local out, i = {}, 1
    while true do
        local ok, bad = utf8len(s, i)
        if ok then out[#out + 1] = s:sub(i); break end
        out[#out + 1] = s:sub(i, bad - 1)
        out[#out + 1] = "\u{FFFD}"
        i = bad + 1
    end
    return table.concat(out)
end

local function dirty(v, depth)
    local t = type(v)
    if t == "string" then return not utf8len(v) end
    if t ~= "table" or depth > 64 or getmetatable(v) then return false end
    for k, x in next, v do
        if dirty(k, depth + 1) or dirty(x, depth + 1) then return true end
    end
    return false
end

local function clean(v, depth)
    depth = depth or 0
    local t = type(v)
    if t == "string" then return clean_string(v) end
    if t ~= "table" or not dirty(v, depth) then return v end
    local copy = {}
    for k, x in next, v do copy[clean(k, depth + 1)] = clean(x, depth + 1) end
    return copy
end
S.clean = clean

local function clean_all(n, a, ...)
    if n == 0 then return end
    return clean(a), clean_all(n - 1, ...)
end

function S.clean_args(...)
    return clean_all(select("#", ...), ...)
end

---------------------------------------------------------------------------------------------
-- Driver: each task attempt runs in its own coroutine. Blocking module calls yield to Python,
-- which runs them on a worker thread and resumes the coroutine with (ok, result).
---------------------------------------------------------------------------------------------
local TASKCO = setmetatable({}, {__mode = "k"})
local BLOCK = {}
local TIMEOUT = setmetatable({}, {__tostring = function() return "task timed out" end})
local call_sync = host.call_sync

-- Raise a module error at the user's line. Lua's error(msg, 2) is not enough: after
-- `return exec.run(...)` (a tail call) the caller's frame no longer exists. Then the best
-- position left is where the task function was defined.
local function raise(msg)
    local level, tail = 3, false
    while true do
        local info = getinfo(level, "Slt")
        if not info then break end
        if info.source:sub(1, 1) == "@" then
            if not tail then
                error(fmt("%s:%d: %s", info.source:sub(2), info.currentline, msg), 0)
            end
            break
        end
        tail = tail or info.istailcall
        level = level + 1
    end
    local fn = TASKCO[co_running()]
    local def = type(fn) == "function" and getinfo(fn, "S")
    if def and def.source:sub(1, 1) == "@" then
        error(fmt("%s:%d: %s", def.source:sub(2), def.linedefined, msg), 0)
    end
    error(msg, 0)
end
S.raise_error = raise

function S.blocking(name)
    return function(...)
        if TASKCO[co_running()] and co_isyieldable() then
            local ok, res = co_yield(BLOCK, name, S.clean_args(...))
            if not ok then raise(res) end
            return res
        end
        local ok, res = call_sync(name, S.clean_args(...))
        if not ok then raise(res) end
        return res
    end
end

local STOPPED = setmetatable({}, {__tostring = function() return "run interrupted" end})

local function always(e)
    return function() error(e, 0) end
end

-- `error({code = 42})`: show what the table holds (a few fields), not its address.
local function shown_table(t)
    local parts, n = {}, 0
    for k, v in pairs(t) do
        n = n + 1
        if n > 8 then parts[#parts + 1] = "..."; break end
        local value = type(v) == "string" and fmt("%q", #v > 80 and v:sub(1, 80) .. "..." or v)
                      or (type(v) == "table" and "{...}" or tostring(v))
        parts[#parts + 1] = (type(k) == "string" and k or "[" .. tostring(k) .. "]")
                            .. " = " .. value
    end
    return "{" .. table.concat(parts, ", ") .. "}"
end

-- Where a coroutine that died raising a non-string error raised it: its stack stays
-- inspectable, and a string error carries its position already.
local function raised_at(co)
    for level = 0, 20 do
        local info = getinfo(co, level, "Sl")
        if not info then return nil end
        if info.source:sub(1, 1) == "@" and info.currentline > 0 then
            return fmt("%s:%d: ", info.source:sub(2), info.currentline)
        end
    end
end

local function describe(err, co)
    if type(err) == "string" then return clean_string(err) end
    local mt = getmetatable(err)
    local where = co and raised_at(co) or ""
    if mt and mt.__tostring then return where .. clean_string(tostring(err)) end
    if type(err) == "table" then
        local message = rawget(err, "message") or rawget(err, "msg") or rawget(err, "error")
        local text = type(message) == "string" and message .. " " or ""
        return where .. clean_string(text .. "(error table " .. shown_table(err) .. ")")
    end
    return where .. "error object (" .. type(err) .. "): " .. tostring(err)
end

-- file:line where a function is defined, for messages about what it returned.
function S.defined_at(fn)
    local info = type(fn) == "function" and getinfo(fn, "S")
    if info and info.source:sub(1, 1) == "@" then
        return fmt("%s:%d", info.source:sub(2), info.linedefined)
    end
end

local function after(co, ok, a, ...)
    if not ok then
        if a == TIMEOUT then return "timeout", nil end
        if a == STOPPED then return "interrupted", nil end
        return "error", describe(a, co), traceback(co)
    end
    if co_status(co) == "dead" then return "done", S.clean_args(a, ...) end
    if a == BLOCK then return "block", ... end
    return "error", "a task called coroutine.yield() outside a coroutine of its own", nil
end

-- Start fn in a task coroutine; Python gets back a step function (resume with values) and a
-- close function. (lupa cannot hand a coroutine object to Python and back, so it stays here.)
-- Every 10,000 instructions a task asks the host whether it is past its deadline (1) or the
-- run is being interrupted (2). Once so, every instruction raises: a pcall loop cannot
-- swallow it. (A task with a deadline also runs in a worker process that is killed when it
-- overruns, because no hook runs inside a long C call.)
local function watch(co, deadline)
    sethook(co, function()
        local why = check(deadline)
        if why ~= 0 then
            local e = why == 1 and TIMEOUT or STOPPED
            sethook(co, always(e), "", 1)
            error(e, 0)
        end
    end, "", 10000)
end

function S.start(fn, deadline)
    local co = co_create(fn)
    TASKCO[co] = fn
    watch(co, deadline)
    return function(...) return after(co, co_resume(co, ...)) end,
           function() co_close(co) end
end

-- Coroutines a task makes for itself are watched like the task: hooks are per coroutine.
local gethook = debug.gethook
local function inherit(co)
    local hook, mask, count = gethook(co_running())
    if hook then sethook(co, hook, mask, count) end
    return co
end
coroutine.create = function(f) return inherit(co_create(f)) end
coroutine.wrap = function(f)
    local co = inherit(co_create(f))
    return function(...)
        local r = table.pack(co_resume(co, ...))
        if not r[1] then
            co_close(co)
            error(r[2], type(r[2]) == "string" and 2 or 0)
        end
        return table.unpack(r, 2, r.n)
    end
end

-- Top-level code of the file is watched for interruption too (a loop at load time).
function S.watch_main()
    sethook(function()
        if check(nil) == 2 then
            sethook(always(STOPPED), "", 1)
            error(STOPPED, 0)
        end
    end, "", 10000)
end

function S.unwatch_main()
    sethook()
end

function S.is_stopped(e)
    return e == STOPPED
end

-- Interpret what a command returned: true|false, "message", {outputs}, or an exec.run result.
function S.outcome(a, b, c)  -- (values were made valid UTF-8 when the task returned them)
    if type(a) == "table" and a.exit_code ~= nil then
        return a.exit_code == 0 and not a.timed_out, b, a, a.exit_code
    end
    if type(a) == "table" and type(a.success) == "boolean" then  -- {success = …, message = …}
        local m = a.message
        if type(m) ~= "string" then m = type(a.error) == "string" and a.error or b end
        return a.success, m, a
    end
    if c ~= nil and type(c) ~= "table" then
        return nil, "the third value a command returns (outputs) must be a table, got " .. type(c)
    end
    if a == nil or a == true then return true, b, c end
    if a == false then return false, b, c end
    return nil, "a command must return true or false (and optionally a message and an outputs "
                .. "table), a table with a boolean `success` (and `message`), or an exec.run "
                .. "result; it returned a " .. type(a)
end

-- Start one attempt of a task command or condition: build its params (a fresh shallow copy of
-- the run's, so a task may change its own), take its deps (outputs of its dependencies, made by
-- the caller), and return step/close functions. One call across the Python/Lua boundary.
function S.start_task(fn, deadline, base, wf, task, this, workdir, deps, ...)
    deps = deps or {}
    for i = 1, select("#", ...) do deps[select(i, ...)] = {} end
    local p = {}
    for k, v in next, base do p[k] = v end
    p.task_name = task
    p.workflow_name = wf
    local step, close = S.start(fn, deadline)
    local started = false
    local obj = this and S.make_this(task, workdir)
    return function(...)
        if not started then
            started = true
            if obj then return step(obj, p, deps) end
            return step(p, deps)
        end
        return step(...)
    end, close
end

-- `this` in a Go-style function (`function(this, params) ... end`): this:name(), and
-- this.workdir with get, exists, create (ensure), cleanup and recreate. Methods work called
-- with `.` or `:`, as Go's users write both.
local function method(obj, f)
    return function(first, ...)
        if first == obj then return f(...) end
        return f(first, ...)
    end
end

function S.make_this(name, workdir)
    local this, wd = {}, {}
    local function dir() return workdir or fs_cwd() end  -- (Go: the current directory)
    wd.get = method(wd, function() return dir() end)
    wd.exists = method(wd, function() return fs.exists(dir()) end)
    wd.create = method(wd, function() fs.mkdir(dir()); return true end)
    wd.ensure = wd.create
    -- Removing is only for a workdir the task declared: without one, "the workdir" is the
    -- directory sloth-runner was started in (a project checkout), which must never go.
    local function removable()
        if not workdir then
            return nil, "task '" .. name .. "' has no :workdir(): this.workdir.cleanup() " ..
                        "removes nothing (it would be the directory sloth-runner runs in)"
        end
        if workdir == "/" or workdir == os.getenv("HOME") then
            return nil, "task '" .. name .. "': this.workdir.cleanup() refuses to remove " .. workdir
        end
        return workdir
    end
    wd.cleanup = method(wd, function()
        local d, why = removable()
        if not d then return false, why end
        if fs.exists(d) then fs.rm(d, {recursive = true}) end
        return true
    end)
    wd.recreate = method(wd, function()
        local ok, why = wd.cleanup()
        if not ok then return false, why end
        return wd.create()
    end)
    this.name = method(this, function() return name end)
    this.workdir = wd
    return this
end

return S

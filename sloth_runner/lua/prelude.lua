-- The workflow DSL and the task driver, loaded once into every runtime before the user's file.
--
-- Builders stay plain Lua tables until Python reads the registry after the file has run: a task
-- definition costs a few microseconds and never crosses into Python. Argument types are checked
-- here, where error(..., level) can point at the user's file:line.
local host = ...

local type, error, tostring, select, setmetatable, rawget, ipairs, pairs, next =
      type, error, tostring, select, setmetatable, rawget, ipairs, pairs, next
local fmt = string.format
local getinfo, sethook, traceback = debug.getinfo, debug.sethook, debug.traceback
local co_create, co_resume, co_status, co_yield, co_running, co_isyieldable, co_close =
      coroutine.create, coroutine.resume, coroutine.status, coroutine.yield,
      coroutine.running, coroutine.isyieldable, coroutine.close
local check = host.check

local S = {}                       -- what Python sees
local REG = {tasks = {}, workflows = {}}
S.registry = REG

---------------------------------------------------------------------------------------------
-- task(name): fluent builder
---------------------------------------------------------------------------------------------
local methods = {}
local Builder = {__index = methods}
local METHOD_NAMES = {}

-- file:line of a caller. getinfo's "S" costs ~1 us, so the source is cached per function and
-- only the cheap "f" and "l" are asked for on each call.
local SOURCES = setmetatable({}, {__mode = "k"})

local function where(level)
    local info = getinfo(level, "fl")
    if not info then return "?" end
    local fn = info.func
    local src = SOURCES[fn]
    if not src then
        local s = getinfo(fn, "S")
        src = s.source:sub(1, 1) == "@" and s.source:sub(2) or s.short_src
        SOURCES[fn] = src
    end
    return src .. ":" .. (info.currentline or 0)
end

local function argerr(self, method, expected, got, level)
    error(fmt("task '%s': :%s() expects %s, got %s", self[1].name, method, expected,
              type(got) == "string" and fmt("%q", got) or type(got)), level or 3)
end

function methods:description(d)
    if type(d) ~= "string" then argerr(self, "description", "a string", d) end
    self[1].description = d
    return self
end

function methods:command(c)
    local t = type(c)
    if t ~= "function" and t ~= "string" then
        argerr(self, "command", "a function or a shell command string", c)
    end
    self[1].command = c
    return self
end

function methods:depends_on(d)
    local spec = self[1]
    local deps = spec.depends_on
    if not deps then deps = {}; spec.depends_on = deps end
    if type(d) == "string" then
        deps[#deps + 1] = d
    elseif type(d) == "table" then
        for i = 1, #d do
            local name = d[i]
            if type(name) ~= "string" then
                argerr(self, "depends_on", "task names (strings)", name)
            end
            deps[#deps + 1] = name
        end
    else
        argerr(self, "depends_on", "a task name or a list of task names", d)
    end
    return self
end

local function duration(self, method, v)
    if type(v) ~= "string" and type(v) ~= "number" then
        argerr(self, method, "a duration like \"30s\" or a number of seconds", v, 4)
    end
    return v
end

function methods:timeout(t)
    self[1].timeout = duration(self, "timeout", t)
    return self
end

function methods:retry_delay(t)
    self[1].retry_delay = duration(self, "retry_delay", t)
    return self
end

local STRATEGIES = {exponential = true, linear = true, fixed = true}

function methods:retries(n, strategy)
    if math.type(n) ~= "integer" or n < 0 then
        argerr(self, "retries", "a whole number >= 0", n)
    end
    if strategy ~= nil and not STRATEGIES[strategy] then
        argerr(self, "retries", "\"exponential\", \"linear\" or \"fixed\" as strategy", strategy)
    end
    self[1].retries = n
    self[1].backoff = strategy
    return self
end

local function condition(method)
    return function(self, c)
        local t = type(c)
        if t ~= "function" and t ~= "string" then
            argerr(self, method, "a function or a shell command string", c)
        end
        self[1][method] = c
        return self
    end
end
methods.run_if = condition("run_if")
methods.abort_if = condition("abort_if")

local function hook(method)
    return function(self, f)
        if type(f) ~= "function" then argerr(self, method, "a function", f) end
        self[1][method] = f
        return self
    end
end
methods.on_success = hook("on_success")
methods.on_failure = hook("on_failure")

function methods:workdir(p)
    if type(p) ~= "string" then argerr(self, "workdir", "a path string", p) end
    self[1].workdir = p
    return self
end

function methods:env(e)
    if type(e) ~= "table" then argerr(self, "env", "a table of NAME = value", e) end
    for k, v in pairs(e) do
        if type(k) ~= "string" or (type(v) ~= "string" and type(v) ~= "number") then
            argerr(self, "env", "string keys and string/number values", v)
        end
    end
    self[1].env = e
    return self
end

local TRIGGER_RULES = {all_success = true, all_done = true, one_failed = true, none_failed = true}

function methods:trigger_rule(rule)
    if not TRIGGER_RULES[rule] then
        argerr(self, "trigger_rule", "\"all_success\", \"all_done\", \"one_failed\" or "
               .. "\"none_failed\"", rule)
    end
    self[1].trigger_rule = rule
    return self
end

local function paths(method)
    return function(self, list)
        if type(list) == "string" then list = {list} end
        if type(list) ~= "table" then argerr(self, method, "a list of paths or globs", list) end
        local out = {}
        for i = 1, #list do
            if type(list[i]) ~= "string" or list[i] == "" then
                argerr(self, method, "paths or globs (non-empty strings)", list[i])
            end
            out[i] = list[i]
        end
        self[1][method] = out
        return self
    end
end
methods.inputs = paths("inputs")
methods.outputs = paths("outputs")

function methods:memory_limit(size)
    if type(size) ~= "string" and math.type(size) ~= "integer" then
        argerr(self, "memory_limit", "a size like \"512MB\" or a number of bytes", size)
    end
    self[1].memory_limit = size
    return self
end

local BUILT = setmetatable({}, {__mode = "k"})
local CREATED = {}  -- every builder's spec, to name the ones never built

function methods:build()
    local spec = self[1]
    if spec.command == nil then
        error(fmt("task '%s': :build() needs a :command(...) first", spec.name), 2)
    end
    if not BUILT[spec] then
        BUILT[spec] = true
        REG.tasks[#REG.tasks + 1] = spec
    end
    return spec
end

for name in pairs(methods) do METHOD_NAMES[#METHOD_NAMES + 1] = name end
table.sort(METHOD_NAMES)

setmetatable(methods, {__index = function(_, key)
    error(fmt("task builder has no method '%s' (methods: %s)", tostring(key),
              table.concat(METHOD_NAMES, ", ")), 2)
end})

-- A name with control characters (newlines, escape codes, C1 controls, line separators) would
-- forge lines in the output and the history.
local function unprintable(name)
    if name:find("%c") or name:find("\194[\128-\159]") or name:find("\226\128[\168\169]") then
        return "a name cannot contain control characters (newlines, escape codes)"
    end
end

local function shown(name)  -- quoted, every control byte as \ddd: the message itself stays one line
    return '"' .. name:gsub("[%c\128-\255]", function(c) return fmt("\\%d", c:byte()) end) .. '"'
end

function task(name)
    if type(name) ~= "string" or name == "" then
        error("task(name) expects a non-empty string, got " .. type(name), 2)
    end
    local bad = unprintable(name)
    if bad then error(fmt("task(name): %s, got %s", bad, shown(name)), 2) end
    local spec = {name = name, where = where(3)}
    CREATED[#CREATED + 1] = spec
    return setmetatable({spec}, Builder)
end

-- A plain task table ({name = "x", command = fn, depends_on = {...}, ...}) goes through the
-- same builder methods, so both forms are checked by the same code.
local function from_table(t, wfname, i)
    local name = t.name
    if type(name) ~= "string" or name == "" then
        error(fmt("workflow '%s': tasks[%s] needs a name (a non-empty string)", wfname,
                  tostring(i)), 3)
    end
    local bad = unprintable(name)
    if bad then error(fmt("workflow '%s': tasks[%s]: %s, got %s", wfname, tostring(i), bad,
                          shown(name)), 3) end
    local b = task(name)
    b[1].where = where(4)
    for k, v in pairs(t) do
        if k ~= "name" then
            local m = rawget(methods, k)
            if type(k) ~= "string" or not m or k == "build" then
                error(fmt("workflow '%s': task '%s' has an unknown field '%s' (fields: %s)",
                          wfname, name, tostring(k), table.concat(METHOD_NAMES, ", ")), 3)
            end
            local ok, err = pcall(m, b, v)
            if not ok then  -- point at the user's table, not at this file
                error((tostring(err):gsub("^[^\n]-:%d+: ", "")), 3)
            end
        end
    end
    local ok, err = pcall(b.build, b)
    if not ok then error((tostring(err):gsub("^[^\n]-:%d+: ", "")), 3) end
    return err
end

---------------------------------------------------------------------------------------------
-- workflow.define(name, {...})
---------------------------------------------------------------------------------------------
local WF_KEYS = {description = "string", tasks = "table", config = "table",
                 on_start = "function", on_complete = "function"}
local CONFIG_KEYS = {max_parallel_tasks = "number", timeout = true}

workflow = {}

function workflow.define(name, def)
    if type(name) ~= "string" or name == "" then
        error("workflow.define(name, definition) expects a non-empty name", 2)
    end
    local bad = unprintable(name)
    if bad then error(fmt("workflow.define(name): %s, got %s", bad, shown(name)), 2) end
    if type(def) ~= "table" then
        error(fmt("workflow '%s': definition must be a table, got %s", name, type(def)), 2)
    end
    for k, v in pairs(def) do
        local want = WF_KEYS[k]
        if not want then
            error(fmt("workflow '%s': unknown field '%s' (fields: description, tasks, config, "
                      .. "on_start, on_complete)", name, tostring(k)), 2)
        end
        if type(v) ~= want then
            error(fmt("workflow '%s': field '%s' must be a %s, got %s", name, k, want, type(v)), 2)
        end
    end
    local tasks = {}
    for i, t in ipairs(def.tasks or {}) do
        if getmetatable(t) == Builder then
            error(fmt("workflow '%s': task '%s' is not built: end its chain with :build()",
                      name, t[1].name), 2)
        end
        if type(t) ~= "table" then
            error(fmt("workflow '%s': tasks[%d] is not a task (use task(\"name\"):...:build())",
                      name, i), 2)
        end
        if not BUILT[t] then t = from_table(t, name, i) end
        t.claimed = true
        tasks[i] = t
    end
    for k, v in pairs(def.config or {}) do
        local want = CONFIG_KEYS[k]
        if not want then
            error(fmt("workflow '%s': unknown config field '%s' (fields: max_parallel_tasks, "
                      .. "timeout)", name, tostring(k)), 2)
        end
        if want ~= true and type(v) ~= want then
            error(fmt("workflow '%s': config.%s must be a %s, got %s", name, k, want, type(v)), 2)
        end
    end
    local wf = {name = name, description = def.description, tasks = tasks, config = def.config,
                on_start = def.on_start, on_complete = def.on_complete, where = where(3)}
    REG.workflows[#REG.workflows + 1] = wf
    return wf
end

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

local function describe(err)
    if type(err) == "string" then return clean_string(err) end
    local mt = getmetatable(err)
    if mt and mt.__tostring then return clean_string(tostring(err)) end
    return "error object (" .. type(err) .. "): " .. tostring(err)
end

local function after(co, ok, a, ...)
    if not ok then
        if a == TIMEOUT then return "timeout", nil end
        if a == STOPPED then return "interrupted", nil end
        return "error", describe(a), traceback(co)
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
    if c ~= nil and type(c) ~= "table" then
        return nil, "the third value a command returns (outputs) must be a table, got " .. type(c)
    end
    if a == nil or a == true then return true, b, c end
    if a == false then return false, b, c end
    return nil, "a command must return true or false (and optionally a message and an outputs "
                .. "table), or an exec.run result; it returned a " .. type(a)
end

-- Start one attempt of a task command or condition: build its params (a fresh shallow copy of
-- the run's, so a task may change its own), take its deps (outputs of its dependencies, made by
-- the caller), and return step/close functions. One call across the Python/Lua boundary.
function S.start_task(fn, deadline, base, wf, task, deps, ...)
    deps = deps or {}
    for i = 1, select("#", ...) do deps[select(i, ...)] = {} end
    local p = {}
    for k, v in next, base do p[k] = v end
    p.task_name = task
    p.workflow_name = wf
    local step, close = S.start(fn, deadline)
    local started = false
    return function(...)
        if not started then
            started = true
            return step(p, deps)
        end
        return step(...)
    end, close
end

function S.unclaimed()
    local out = {}
    for _, spec in ipairs(REG.tasks) do
        if not spec.claimed then out[#out + 1] = spec end
    end
    return out
end

-- Builders whose chain never reached :build(): "name\tfile:line" each.
function S.unbuilt()
    local out = {}
    for _, spec in ipairs(CREATED) do
        if not BUILT[spec] then out[#out + 1] = spec.name .. "\t" .. spec.where end
    end
    return out
end

return S

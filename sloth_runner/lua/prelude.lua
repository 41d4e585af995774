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
local now = host.now

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

local BUILT = setmetatable({}, {__mode = "k"})

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

function task(name)
    if type(name) ~= "string" or name == "" then
        error("task(name) expects a non-empty string, got " .. type(name), 2)
    end
    return setmetatable({{name = name, where = where(3)}}, Builder)
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
    local tasks = def.tasks or {}
    for i, t in ipairs(tasks) do
        if getmetatable(t) == Builder then
            error(fmt("workflow '%s': task '%s' is not built: end its chain with :build()",
                      name, t[1].name), 2)
        end
        if type(t) ~= "table" or not BUILT[t] then
            error(fmt("workflow '%s': tasks[%d] is not a task (use task(\"name\"):...:build())",
                      name, i), 2)
        end
        t.claimed = true
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
            local ok, res = co_yield(BLOCK, name, ...)
            if not ok then raise(res) end
            return res
        end
        local ok, res = call_sync(name, ...)
        if not ok then raise(res) end
        return res
    end
end

local function always_timeout()
    error(TIMEOUT, 0)
end

local function describe(err)
    if type(err) == "string" then return err end
    local mt = getmetatable(err)
    if mt and mt.__tostring then return tostring(err) end
    return "error object (" .. type(err) .. "): " .. tostring(err)
end

local function after(co, ok, a, ...)
    if not ok then
        if a == TIMEOUT then return "timeout", nil end
        return "error", describe(a), traceback(co)
    end
    if co_status(co) == "dead" then return "done", a, ... end
    if a == BLOCK then return "block", ... end
    return "error", "a task called coroutine.yield() outside a coroutine of its own", nil
end

-- Start fn in a task coroutine; Python gets back a step function (resume with values) and a
-- close function. (lupa cannot hand a coroutine object to Python and back, so it stays here.)
function S.start(fn, deadline)
    local co = co_create(fn)
    TASKCO[co] = fn
    if deadline then
        sethook(co, function()
            if now() >= deadline then
                -- From now on every instruction raises, so a pcall loop cannot swallow it.
                sethook(co, always_timeout, "", 1)
                error(TIMEOUT, 0)
            end
        end, "", 10000)
    end
    return function(...) return after(co, co_resume(co, ...)) end,
           function() co_close(co) end
end

-- Interpret what a command returned: true|false, "message", {outputs}, or an exec.run result.
function S.outcome(a, b, c)
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

-- Outputs of finished tasks, by workflow then task, so dependents get the very same tables.
local OUT = {}
local EMPTY_MT = {__newindex = function() error("outputs of a dependency are read-only", 2) end}

function S.keep_outputs(wf, task, outputs)
    local w = OUT[wf]
    if not w then w = {}; OUT[wf] = w end
    w[task] = outputs
end

-- Start one attempt of a task command or condition: build its params (a fresh shallow copy of
-- the run's, so a task may change its own) and deps, and return step/close functions. One call
-- across the Python/Lua boundary instead of four.
function S.start_task(fn, deadline, base, wf, task, ...)
    local p = {}
    for k, v in next, base do p[k] = v end
    p.task_name = task
    p.workflow_name = wf
    local deps = {}
    local n = select("#", ...)
    if n > 0 then
        local w = OUT[wf] or {}
        for i = 1, n do
            local name = select(i, ...)
            deps[name] = w[name] or setmetatable({}, EMPTY_MT)
        end
    end
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

-- Everything Python needs of a built task, in one call: fixed fields, then the dependencies.
function S.export(spec)
    local deps = spec.depends_on or {}
    return spec.name, spec.command, spec.where, spec.description, spec.timeout, spec.retries,
           spec.backoff, spec.retry_delay, spec.run_if, spec.abort_if, spec.on_success,
           spec.on_failure, spec.workdir, spec.env, table.unpack(deps)
end

function S.unclaimed()
    local out = {}
    for _, spec in ipairs(REG.tasks) do
        if not spec.claimed then out[#out + 1] = spec end
    end
    return out
end

return S

-- The workflow DSL: task(name) builders, workflow.define in its fluent and table forms, and
-- plain task tables. Loaded into every runtime after prelude.lua, which it gets as S.
--
-- Builders stay plain Lua tables until Python reads the registry after the file has run: a task
-- definition costs a few microseconds and never crosses into Python. Argument types are checked
-- here, where error(..., level) can point at the user's file:line. The forms the Go
-- sloth-runner's users write (its "Modern DSL") are accepted as they are, and every method does
-- what it says (the Go engine silently ignores several of them).
local S, host = ...

local type, error, tostring, setmetatable, getmetatable, rawget, ipairs, pairs, next =
      type, error, tostring, setmetatable, getmetatable, rawget, ipairs, pairs, next
local fmt = string.format
local getinfo, getlocal = debug.getinfo, debug.getlocal

local REG = {tasks = {}, workflows = {}}
S.registry = REG

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

-- A function whose first parameter is named `this` (or `self`) is called Go-style:
-- fn(this, params, deps); any other as fn(params, deps).
local function this_style(fn)
    local first = getlocal(fn, 1)
    return first == "this" or first == "self"
end
S.this_style = this_style

---------------------------------------------------------------------------------------------
-- task(name): fluent builder
---------------------------------------------------------------------------------------------
local methods = {}
local Builder = {__index = methods}
local METHOD_NAMES = {}
local BUILT = setmetatable({}, {__mode = "k"})
local CREATED = {}  -- every builder's spec, to name the ones never built

local function argerr(self, method, expected, got, level)
    error(fmt("task '%s': :%s() expects %s, got %s", self[1].name, method, expected,
              type(got) == "string" and fmt("%q", got) or type(got)), level or 3)
end

-- Remember which actions of a task are this-style: a set, made only when one is.
local function set_action(self, kind, f)
    local spec = self[1]
    spec[kind] = f
    if type(f) == "function" and this_style(f) then
        local this = spec.this
        if not this then this = {}; spec.this = this end
        this[kind] = true
    elseif spec.this then
        spec.this[kind] = nil
    end
    return self
end

function methods:description(d)
    if type(d) ~= "string" then argerr(self, "description", "a string", d) end
    self[1].description = d
    return self
end

function methods:command(c)
    local t = type(c)
    if t == "table" and (getmetatable(c) == Builder or BUILT[c]) then  -- another task's command
        c = getmetatable(c) == Builder and c[1].command or c.command
        t = type(c)
    end
    if t ~= "function" and t ~= "string" then
        argerr(self, "command", "a function or a shell command string", c)
    end
    return set_action(self, "command", c)
end
methods.run = methods.command  -- Go's alias

function methods:shell(script)  -- a shell script as the command (Go)
    if type(script) ~= "string" then argerr(self, "shell", "a shell script (a string)", script) end
    return set_action(self, "command", script)
end

-- A dependency may be named, or given as the task itself (built or not).
local function task_name(v)
    if type(v) == "string" then return v end
    if type(v) == "table" then
        if getmetatable(v) == Builder then return v[1].name end
        if type(v.name) == "string" then return v.name end
    end
end

function methods:depends_on(d)
    local spec = self[1]
    local deps = spec.depends_on
    if not deps then deps = {}; spec.depends_on = deps end
    local one = task_name(d)
    if one then
        deps[#deps + 1] = one
    elseif type(d) == "table" then
        for i = 1, #d do
            local name = task_name(d[i])
            if not name then
                argerr(self, "depends_on", "task names or tasks", d[i])
            end
            deps[#deps + 1] = name
        end
    else
        argerr(self, "depends_on", "a task name, a task, or a list of them", d)
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
        return set_action(self, method, c)
    end
end
methods.run_if = condition("run_if")
methods.abort_if = condition("abort_if")

local function hook(method)
    return function(self, f)
        if type(f) ~= "function" then argerr(self, method, "a function", f) end
        return set_action(self, method, f)
    end
end
methods.on_success = hook("on_success")
methods.on_failure = hook("on_failure")
methods.on_fail = methods.on_failure  -- Go's alias
methods.pre_hook = hook("pre_hook")
methods.post_hook = hook("post_hook")
methods.on_timeout = hook("on_timeout")

-- :heal{actions = {name = "shell" | function(params, failure) | {run = ..., when = "text",
-- description = "..."}}, max_attempts = 1}: what may be run to repair the task's surroundings
-- when it has failed for good; only these can ever run (see engine/healing.py).
local HEAL_FIELDS = {actions = true, max_attempts = true}
local ACTION_FIELDS = {run = true, when = true, description = true}

function methods:heal(spec)
    if type(spec) ~= "table" then
        argerr(self, "heal", "a table {actions = {...}, max_attempts = n}", spec)
    end
    for k in pairs(spec) do
        if not HEAL_FIELDS[k] then
            argerr(self, "heal", "only `actions` and `max_attempts`, a field", tostring(k))
        end
    end
    local actions = spec.actions
    if type(actions) ~= "table" or next(actions) == nil then
        argerr(self, "heal", "`actions`: a table of named actions", actions)
    end
    local max = spec.max_attempts == nil and 1 or spec.max_attempts
    if math.type(max) ~= "integer" or max < 1 then
        argerr(self, "heal", "`max_attempts`: a whole number >= 1", max)
    end
    local out = {max_attempts = max, actions = {}}
    for name, a in pairs(actions) do
        if type(name) ~= "string" or not name:match("^[%a_][%w_%-]*$") or name == "none" then
            argerr(self, "heal", "action names that are words (not \"none\")", tostring(name))
        end
        local action = type(a) == "table" and a or {run = a}
        if type(a) == "table" then
            for k in pairs(a) do
                if not ACTION_FIELDS[k] then
                    argerr(self, "heal", "`run`, `when` and `description` in action '" .. name
                           .. "', a field", tostring(k))
                end
            end
        end
        if type(action.run) ~= "string" and type(action.run) ~= "function" then
            argerr(self, "heal", "action '" .. name .. "' to be a shell command or a function",
                   action.run)
        end
        for _, k in ipairs({"when", "description"}) do
            if action[k] ~= nil and type(action[k]) ~= "string" then
                argerr(self, "heal", "`" .. k .. "` of action '" .. name .. "' to be a string",
                       action[k])
            end
        end
        out.actions[name] = {run = action.run, when = action.when,
                             description = action.description}
    end
    self[1].heal = out
    return self
end

local function text(method)
    return function(self, v)
        if type(v) ~= "string" or v == "" then argerr(self, method, "a non-empty string", v) end
        self[1][method] = v
        return self
    end
end
methods.workdir = text("workdir")
methods.user = text("user")

function methods:delegate_to(host)  -- a name, an address, a list (on each), {address = ...}
    local t = type(host)
    if t == "table" then
        local names = {}
        if type(host.address) == "string" or type(host.name) == "string" then
            names[1] = host.address or host.name
        end
        for _, h in ipairs(host) do
            if type(h) ~= "string" then argerr(self, "delegate_to", "agent names", h) end
            names[#names + 1] = h
        end
        if #names == 0 then argerr(self, "delegate_to", "a list of agent names", host) end
        host, t = table.concat(names, ","), "string"
    elseif t ~= "string" and t ~= "function" then
        argerr(self, "delegate_to", "an agent name or address", host)
    end
    self[1].delegate_to = t == "string" and host or t
    return self
end

function methods:async(flag)  -- every task runs as soon as it can: nothing to switch on
    if type(flag) ~= "boolean" and flag ~= nil then argerr(self, "async", "true or false", flag) end
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
methods.artifacts = paths("artifacts")
methods.consumes = paths("consumes")

function methods:memory_limit(size)
    if type(size) ~= "string" and math.type(size) ~= "integer" then
        argerr(self, "memory_limit", "a size like \"512MB\" or a number of bytes", size)
    end
    self[1].memory_limit = size
    return self
end

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

local function named(name)  -- 'name' as messages quote it, or shown() if it could forge lines
    if type(name) ~= "string" then return tostring(name) end
    return unprintable(name) and shown(name) or "'" .. name .. "'"
end

-- A key that disagrees with its task's name (`{lint = {name = "other"}}`): which one did the
-- author mean? Say so rather than run the task under either name.
local function key_mismatch(wfname, key, name, level)
    error(fmt("workflow '%s': tasks key %s holds task %s: a keyed task's key is its name (make "
              .. "them the same, or list the task without a key)", wfname, named(key), named(name)),
          level + 1)
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
-- same builder methods, so both forms are checked by the same code. In a table keyed by name
-- ({fetch = {command = ...}}), the key is the name.
local function from_table(t, wfname, key)
    local name = t.name
    if name == nil and type(key) == "string" then name = key end
    if type(key) == "string" and name ~= key then key_mismatch(wfname, key, name, 4) end
    if type(name) ~= "string" or name == "" then
        error(fmt("workflow '%s': tasks[%s] needs a name (a non-empty string)", wfname,
                  tostring(key)), 4)
    end
    local bad = unprintable(name)
    if bad then error(fmt("workflow '%s': tasks[%s]: %s, got %s", wfname, tostring(key), bad,
                          shown(name)), 4) end
    local b = task(name)
    b[1].where = where(5)
    for k, v in pairs(t) do
        if k ~= "name" then
            local m = rawget(methods, k)
            if type(k) ~= "string" or not m or k == "build" then
                error(fmt("workflow '%s': task '%s' has an unknown field '%s' (fields: %s)",
                          wfname, name, tostring(k), table.concat(METHOD_NAMES, ", ")), 4)
            end
            local ok, err = pcall(m, b, v)
            if not ok then  -- point at the user's table, not at this file
                error((tostring(err):gsub("^[^\n]-:%d+: ", "")), 4)
            end
        end
    end
    local ok, err = pcall(b.build, b)
    if not ok then error((tostring(err):gsub("^[^\n]-:%d+: ", "")), 4) end
    return err
end

---------------------------------------------------------------------------------------------
-- workflow.define(name [, {...}]): a table, or (no table) a fluent builder
---------------------------------------------------------------------------------------------
local WF_KEYS = {description = "string", version = "string", tasks = "table", config = "table",
                 on_start = "function", on_complete = "function", delegate_to = "string"}
local WF_FIELDS = "description, version, tasks, config, on_start, on_complete, delegate_to"
-- config keys with a meaning here; Go's others are accepted and reported as unused
local CONFIG_KEYS = {max_parallel_tasks = "number", timeout = true, workdir = "string",
                     create_workdir_before_run = "boolean", continue_on_error = "boolean"}

-- `level` 3: the user's line, seen from claim called by define or by a workflow method.
-- Each call adds to the workflow's tasks: `:tasks({a}):tasks({b})` lists both (a task given
-- twice is the engine's duplicate-name error, naming both places).
local function claim(wf, list, level)
    local tasks = wf.tasks
    local keys = {}
    for k in pairs(list) do keys[#keys + 1] = k end
    -- a list keeps its order; names (keyed tables) follow, sorted, so loading is repeatable
    table.sort(keys, function(a, b)
        if type(a) == type(b) then return a < b end
        return type(a) == "number"
    end)
    for _, k in ipairs(keys) do
        local t = list[k]
        if getmetatable(t) == Builder then
            error(fmt("workflow '%s': task '%s' is not built: end its chain with :build()",
                      wf.name, t[1].name), level)
        end
        if type(t) ~= "table" then
            error(fmt("workflow '%s': tasks[%s] is not a task (use task(\"name\"):...:build())",
                      wf.name, tostring(k)), level)
        end
        if not BUILT[t] then
            t = from_table(t, wf.name, k)
        elseif type(k) == "string" and t.name ~= k then
            key_mismatch(wf.name, k, t.name, level)
        end
        t.claimed = true
        tasks[#tasks + 1] = t
    end
end

local function check_config(wf, config, level)
    for k, v in pairs(config) do
        local want = CONFIG_KEYS[k]
        if type(k) ~= "string" then
            error(fmt("workflow '%s': config keys are names, got %s", wf.name, type(k)), level)
        end
        if want and want ~= true and type(v) ~= want then
            error(fmt("workflow '%s': config.%s must be a %s, got %s", wf.name, k, want,
                      type(v)), level)
        end
        if not want then
            local unused = wf.unused or {}
            wf.unused = unused
            unused[#unused + 1] = k
        end
    end
    wf.config = config
end

local wf_methods = {}
local WorkflowBuilder = {__index = wf_methods}

local function wf_argerr(self, method, expected, got)
    error(fmt("workflow '%s': :%s() expects %s, got %s", self.spec.name, method, expected,
              type(got)), 3)
end

function wf_methods:description(d)
    if type(d) ~= "string" then wf_argerr(self, "description", "a string", d) end
    self.spec.description = d
    return self
end

function wf_methods:version(v)
    if type(v) ~= "string" and type(v) ~= "number" then
        wf_argerr(self, "version", "a version string", v)
    end
    self.spec.version = tostring(v)
    return self
end

function wf_methods:tasks(list)
    if type(list) ~= "table" then wf_argerr(self, "tasks", "a list of tasks", list) end
    claim(self.spec, list, 3)
    return self
end

function wf_methods:config(c)
    if type(c) ~= "table" then wf_argerr(self, "config", "a table", c) end
    check_config(self.spec, c, 3)
    return self
end

local function wf_hook(method)
    return function(self, f)
        if type(f) ~= "function" then wf_argerr(self, method, "a function", f) end
        self.spec[method] = f
        return self
    end
end
wf_methods.on_start = wf_hook("on_start")
wf_methods.on_complete = wf_hook("on_complete")

function wf_methods:build()  -- Go users end chains with it; a workflow needs no building
    return self
end

function wf_methods:delegate_to(host)
    if type(host) ~= "string" then wf_argerr(self, "delegate_to", "an agent name", host) end
    self.spec.delegate_to = host
    return self
end

local WF_METHOD_NAMES = {}
for name in pairs(wf_methods) do WF_METHOD_NAMES[#WF_METHOD_NAMES + 1] = name end
table.sort(WF_METHOD_NAMES)
setmetatable(wf_methods, {__index = function(_, key)
    error(fmt("workflow builder has no method '%s' (methods: %s)", tostring(key),
              table.concat(WF_METHOD_NAMES, ", ")), 2)
end})

workflow = {}

function workflow.define(name, def)
    if type(name) ~= "string" or name == "" then
        error("workflow.define(name, definition) expects a non-empty name", 2)
    end
    local bad = unprintable(name)
    if bad then error(fmt("workflow.define(name): %s, got %s", bad, shown(name)), 2) end
    local wf = {name = name, tasks = {}, where = where(3)}
    REG.workflows[#REG.workflows + 1] = wf  -- read when the file has finished loading
    if def == nil then
        return setmetatable({spec = wf}, WorkflowBuilder)
    end
    if type(def) ~= "table" then
        error(fmt("workflow '%s': definition must be a table, got %s", name, type(def)), 2)
    end
    for k, v in pairs(def) do
        local want = WF_KEYS[k]
        if not want then
            error(fmt("workflow '%s': unknown field '%s' (fields: %s)", name, tostring(k),
                      WF_FIELDS), 2)
        end
        if type(v) ~= want and not (k == "version" and type(v) == "number") then
            error(fmt("workflow '%s': field '%s' must be a %s, got %s", name, k, want, type(v)), 2)
        end
    end
    wf.description, wf.on_start, wf.on_complete = def.description, def.on_start, def.on_complete
    wf.version = def.version and tostring(def.version)
    wf.delegate_to = def.delegate_to
    claim(wf, def.tasks or {}, 3)
    if def.config then check_config(wf, def.config, 3) end
    return wf
end

-- What the loader reads once the file has run.
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

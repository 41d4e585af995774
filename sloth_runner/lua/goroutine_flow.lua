-- Condition variables, contexts, pipelines, fan-out and fan-in: built on the scheduler of
-- goroutine_sched.lua (which hands over its module table and helpers) and on the mutexes of
-- goroutine_sync.lua. Compiled with them, the first time a workflow touches `goroutine`.
local M, K = ...
local type, setmetatable, getmetatable, ipairs, pairs, pcall, error =
      type, setmetatable, getmetatable, ipairs, pairs, pcall, error
local mtype, floor, fmt = math.type, math.floor, string.format
local raise, add_timer, current, fire, live_waiter, need_function, park, push, queue, spawn_in,
      to_seconds, waiter, now, wall, need_channel, send, receive =
      K.raise, K.add_timer, K.current, K.fire, K.live_waiter, K.need_function, K.park, K.push,
      K.queue, K.spawn_in, K.to_seconds, K.waiter, K.now, K.wall, K.need_channel, K.send,
      K.receive

-- condition variables ------------------------------------------------------------------------
-- Go's sync.Cond over one of our mutexes. goroutine.cond() makes its own mutex (get_mutex()
-- hands it out, as in the Go module); goroutine.cond(mu) uses the caller's, which may be any
-- object with lock and unlock (a mutex, an rwmutex's write side).
local Cond = {}
Cond.__index = Cond

local function lockable(mu)
    if type(mu) ~= "table" then return false end
    return type(mu.lock) == "function" and type(mu.unlock) == "function"
end

function M.cond(mu)
    if mu == nil then
        mu = M.mutex()
    elseif not lockable(mu) then
        raise("goroutine.cond(mutex) expects a mutex (made by goroutine.mutex), got "
              .. type(mu))
    end
    return setmetatable({mu = mu, waiters = queue()}, Cond)
end

-- As sync.Cond.Wait: queued before the unlock, so a signal sent between the unlock and the
-- park is not lost; the caller holds the mutex again when wait returns.
local function need_cond(c, what)
    if getmetatable(c) ~= Cond then
        raise(fmt("%s expects a condition (made by goroutine.cond), got %s", what, type(c)))
    end
end

function Cond:wait()
    need_cond(self, "cond:wait")
    local w = waiter(current())
    push(self.waiters, w)
    self.mu:unlock()
    park(w)
    self.mu:lock()
end

function Cond:signal()
    need_cond(self, "cond:signal")
    local w = live_waiter(self.waiters)
    if w then fire(w, 0) end
end

function Cond:broadcast()
    need_cond(self, "cond:broadcast")
    while true do
        local w = live_waiter(self.waiters)
        if not w then return end
        fire(w, 0)
    end
end

function Cond:get_mutex()
    need_cond(self, "cond:get_mutex")
    return self.mu
end

-- contexts -----------------------------------------------------------------------------------
-- Go's context: cancel cascades to children; a deadline (monotonic `at`, with the wall-clock
-- milliseconds the Go API speaks in) is inherited when earlier than the child's own. Expiry
-- is checked against the clock whenever asked (is_cancelled, err), so polling needs no timer;
-- only a done() channel, which someone may wait on, arms a timer in the asking task's
-- scheduler. An unarmed deadline therefore never delays the deadlock report. with_timeout
-- takes milliseconds, as in Go, or a duration such as "5s", as goroutine.sleep does.
local CANCELED, EXCEEDED = "context canceled", "context deadline exceeded"
local Context = {}
Context.__index = Context

local function cancel(ctx, reason)
    if ctx.reason then return end
    ctx.reason = reason
    for _, w in ipairs(ctx.timers) do w.fired = true end  -- dropped by the scheduler
    ctx.timers = {}
    if ctx.done_ch then M.channel_close(ctx.done_ch) end
    for child in pairs(ctx.children) do cancel(child, reason) end
    ctx.children = {}
    if ctx.parent then ctx.parent.children[ctx] = nil end
end

local function check(ctx)
    if ctx.reason == nil and ctx.at ~= nil and now() >= ctx.at then cancel(ctx, EXCEEDED) end
    return ctx.reason
end

local function new_context(parent, at, epoch_ms)
    local ctx = setmetatable({children = setmetatable({}, {__mode = "k"}), timers = {},
                              armed = setmetatable({}, {__mode = "k"})}, Context)
    if parent ~= nil then
        if parent.at ~= nil and (at == nil or parent.at <= at) then
            at, epoch_ms = parent.at, parent.epoch_ms
        end
        ctx.parent = parent
        local reason = check(parent)
        if reason then ctx.reason = reason else parent.children[ctx] = true end
    end
    ctx.at, ctx.epoch_ms = at, epoch_ms
    check(ctx)
    return ctx
end

local function need_context(ctx, what)
    if getmetatable(ctx) ~= Context then
        raise(fmt("%s expects a context (made by goroutine.context), got %s", what, type(ctx)))
    end
end

function M.context()
    local ctx = new_context(nil, nil, nil)
    return ctx, function() cancel(ctx, CANCELED) end
end

function Context:with_cancel()
    need_context(self, "ctx:with_cancel")
    local ctx = new_context(self, nil, nil)
    return ctx, function() cancel(ctx, CANCELED) end
end

function Context:with_timeout(ms)
    need_context(self, "ctx:with_timeout")
    local seconds = to_seconds(ms, "ctx:with_timeout")
    local ctx = new_context(self, now() + seconds, floor((wall() + seconds) * 1000))
    return ctx, function() cancel(ctx, CANCELED) end
end

function Context:with_deadline(epoch_ms)
    need_context(self, "ctx:with_deadline")
    if type(epoch_ms) ~= "number" then
        raise("ctx:with_deadline expects milliseconds since the epoch, got " .. type(epoch_ms))
    end
    local ctx = new_context(self, now() + (epoch_ms / 1000 - wall()), epoch_ms)
    return ctx, function() cancel(ctx, CANCELED) end
end

function Context:cancel()
    need_context(self, "ctx:cancel")
    cancel(self, CANCELED)
end

function Context:is_cancelled()
    need_context(self, "ctx:is_cancelled")
    return check(self) ~= nil
end

function Context:err()
    need_context(self, "ctx:err")
    return check(self)
end

function Context:deadline()
    need_context(self, "ctx:deadline")
    if self.epoch_ms == nil then return nil, false end
    return self.epoch_ms, true
end

-- A channel closed when the context ends: `ctx:done():receive()`, or a case of select.
function Context:done()
    need_context(self, "ctx:done")
    local ch = self.done_ch
    if ch == nil then
        ch = M.channel(0)
        self.done_ch = ch
        if check(self) then M.channel_close(ch) end
    end
    local sched = current().sched
    if self.reason == nil and self.at ~= nil and not self.armed[sched] then
        self.armed[sched] = true
        local ctx = self
        local w = {fired = false, cb = function() cancel(ctx, EXCEEDED) end}
        self.timers[#self.timers + 1] = w
        local delay = self.at - now()
        add_timer(sched, delay > 0 and delay or 0, w, -1)
    end
    return ch
end

-- pipelines, fan-out, fan-in -----------------------------------------------------------------
-- As in the Go module: every channel made here holds 10 values and is closed once what feeds
-- it is drained. A stage function that fails fails the task at its next waiting point (as an
-- error in any goroutine does), with the stage's number in front of the user's file:line;
-- Go's module printed it and dropped the value. A worker whose output was closed by the
-- consumer stops (Go's would panic).
local BUFFER = 10

local function stage_error(i, e)
    if type(e) ~= "string" then error(e, 0) end  -- the run's own stop signals, as they are
    local at, msg = e:match("^([^\n]-:%d+: )(.*)$")  -- keep the user's file:line in front
    if at == nil then at, msg = "", e end
    error(fmt("%sgoroutine.pipeline: stage %d: %s", at, i, msg), 0)
end

local function run_stage(i, fn, input, output, state)
    while true do
        local v, ok = receive(input)
        if not ok then break end
        local fine, r = pcall(fn, v)
        if not fine then stage_error(i, r) end
        if not send(output, r) then break end
    end
    state.left = state.left - 1
    if state.left == 0 and not output.closed then M.channel_close(output) end
end

function M.pipeline(input, stages)
    need_channel(input, "goroutine.pipeline")
    if type(stages) ~= "table" then
        raise("goroutine.pipeline expects a list of stages {workers = n, fn = function}")
    end
    local plan = {}
    for i, stage in ipairs(stages) do
        if type(stage) ~= "table" or type(stage.fn) ~= "function" then
            raise(fmt("goroutine.pipeline: stage %d needs fn = a function", i))
        end
        local workers = stage.workers
        if workers == nil then workers = 1 end
        if mtype(workers) ~= "integer" or workers < 1 then
            raise(fmt("goroutine.pipeline: stage %d: workers must be a whole number >= 1", i))
        end
        plan[i] = {fn = stage.fn, workers = workers}
    end
    local cur, ch = current(), input
    for i, stage in ipairs(plan) do
        local output = M.channel(BUFFER)
        local state = {left = stage.workers}
        for _ = 1, stage.workers do spawn_in(cur, run_stage, i, stage.fn, ch, output, state) end
        ch = output
    end
    return ch
end

function M.fan_out(input, n)
    need_channel(input, "goroutine.fan_out")
    if mtype(n) ~= "integer" or n < 1 then
        raise("goroutine.fan_out(channel, n): n must be a whole number >= 1")
    end
    local outputs = {}
    for i = 1, n do outputs[i] = M.channel(BUFFER) end
    spawn_in(current(), function()
        while true do  -- every value goes to every output, in order, as in the Go module
            local v, ok = receive(input)
            if not ok then break end
            for i = 1, n do send(outputs[i], v) end
        end
        for i = 1, n do
            if not outputs[i].closed then M.channel_close(outputs[i]) end
        end
    end)
    return outputs
end

function M.fan_in(inputs)
    if type(inputs) ~= "table" or inputs[1] == nil then
        raise("goroutine.fan_in expects a list of channels (at least one)")
    end
    for i, ch in ipairs(inputs) do need_channel(ch, fmt("goroutine.fan_in: item %d", i)) end
    local output, state = M.channel(BUFFER), {left = #inputs}
    local cur = current()
    for _, input in ipairs(inputs) do
        spawn_in(cur, function()
            while true do
                local v, ok = receive(input)
                if not ok or not send(output, v) then break end
            end
            state.left = state.left - 1
            if state.left == 0 and not output.closed then M.channel_close(output) end
        end)
    end
    return output
end

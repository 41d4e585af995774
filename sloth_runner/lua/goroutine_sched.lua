-- The goroutine scheduler: goroutines, timers, jobs, sleep, wait groups, channels and
-- select. Compiled the first time a workflow touches `goroutine` (lua/goroutine.py);
-- goroutine_sync.lua adds the synchronisation tools on top of it.
-- The scheduler. Names: a *thread* is a goroutine or the task itself ("owner"); a thread waits
-- on a *waiter*, which channels, timers and jobs hold and `fire` once. Functions on the way to
-- a `raise` are never tail-called, so errors point at the user's line.
local S, orig_blocking, GOS, SCHEDS, wait_name, start_job, collect_job, poll_jobs, poke, now,
      parse_duration, wall = ...
local raise = S.raise_error
local co_create, co_resume, co_status, co_yield, co_running, co_isyieldable =
      coroutine.create, coroutine.resume, coroutine.status, coroutine.yield, coroutine.running,
      coroutine.isyieldable
local type, tostring, setmetatable, getmetatable, ipairs, pairs, error, select =
      type, tostring, setmetatable, getmetatable, ipairs, pairs, error, select
local pack, unpack, mtype, fmt = table.pack, table.unpack, math.type, string.format

local PARK = {}                                   -- what a goroutine yields to its scheduler
local NIL = {}                                    -- nil, as a channel carries it
local sched_ids = 0
local wait_any = orig_blocking(wait_name)

local function queue() return {first = 1, last = 0} end
local function push(q, v) q.last = q.last + 1; q[q.last] = v end
local function pop(q)
    local i = q.first
    if i > q.last then return nil end
    local v = q[i]; q[i] = nil; q.first = i + 1
    return v
end
local function qlen(q) return q.last - q.first + 1 end

local function current()
    local co = co_running()
    local g = GOS[co]
    if g then return g end
    local sched = SCHEDS[co]
    if not sched then
        sched_ids = sched_ids + 1
        sched = {id = sched_ids, ready = queue(), jobs = {}, njobs = 0, timers = {}, live = 0,
                 in_wait = false}
        sched.owner = {sched = sched, owner = true}
        SCHEDS[co] = sched
    end
    return sched.owner
end

local function runnable(t)
    local sched = t.sched
    if not t.owner then push(sched.ready, t) end
    if sched.in_wait then poke(sched.id) end  -- woken from another task's code
end

local function waiter(t) return {t = t, fired = false} end

-- A waiter with `cb` instead of a thread runs cb(w) when fired: a timer that does something
-- (a context's deadline) rather than wake someone.
local function fire(w, case, value, ok)
    if w.fired then return false end
    w.fired, w.case, w.value, w.ok = true, case, value, ok
    local cb = w.cb
    if cb then cb(w) else runnable(w.t) end
    return true
end

local function add_timer(sched, seconds, w, case)
    local timers = sched.timers
    timers[#timers + 1] = {at = now() + seconds, w = w, case = case}
end

local function fire_timers(sched)
    local timers = sched.timers
    if #timers == 0 then return end
    local t, keep = now(), {}
    for i = 1, #timers do
        local e = timers[i]
        if not e.w.fired then
            if e.at <= t then fire(e.w, e.case) else keep[#keep + 1] = e end
        end
    end
    sched.timers = keep
end

local function next_delay(sched)
    local soonest
    for _, e in ipairs(sched.timers) do
        if not e.w.fired and (soonest == nil or e.at < soonest) then soonest = e.at end
    end
    if soonest == nil then return nil end
    local d = soonest - now()
    return d > 0 and d or 0
end

local function jobs_done(sched, ids)
    for i = 1, #ids do
        local w = sched.jobs[ids[i]]
        if w then
            sched.jobs[ids[i]] = nil
            sched.njobs = sched.njobs - 1
            fire(w, 0)
        end
    end
end

local function resume(g)
    local sched = g.sched
    local ok, a = co_resume(g.co)
    if not ok then
        g.dead = true
        sched.live = sched.live - 1
        if sched.failure == nil then sched.failure = a end
    elseif co_status(g.co) == "dead" then
        g.dead = true
        sched.live = sched.live - 1
    elseif a ~= PARK then
        push(sched.ready, g)  -- a plain coroutine.yield(): the others go first
    end
end

local function check_failure(sched)
    local e = sched.failure
    if e ~= nil then
        sched.failure = nil
        error(e, 0)  -- as is: the goroutine's file:line, or the run's own stop signals
    end
end

local function run_ready(sched)
    for _ = 1, qlen(sched.ready) do
        local g = pop(sched.ready)
        if g and not g.dead then resume(g) end
    end
end

local DEADLOCK = "goroutine: deadlock: everything in this task is waiting (on channels, wait "
    .. "groups, mutexes ...) and nothing left can wake it"

-- The task itself waits: run its goroutines; when none can run, wait for a job or a timer.
local function owner_wait(sched, w)
    while true do
        run_ready(sched)
        check_failure(sched)
        if w.fired then return end
        if qlen(sched.ready) > 0 then
            jobs_done(sched, poll_jobs(sched.id))
            fire_timers(sched)
        else
            fire_timers(sched)
            if not w.fired and qlen(sched.ready) == 0 then
                local delay = next_delay(sched)
                if sched.njobs == 0 and delay == nil then raise(DEADLOCK) end
                sched.in_wait = true
                local ids = wait_any(sched.id, delay or -1)
                sched.in_wait = false
                jobs_done(sched, ids)
                fire_timers(sched)
            end
        end
    end
end

local function park(w)
    local t = w.t
    if t.owner then
        owner_wait(t.sched, w)
        return
    end
    if not co_isyieldable() then
        raise("goroutine: cannot wait here (inside a C call: a metamethod, a table.sort "
              .. "comparator, a string.gsub callback ...)")
    end
    repeat co_yield(PARK) until w.fired
end

local function go_block_call(t, name, ...)
    local sched = t.sched
    local id = start_job(sched.id, name, ...)
    local w = waiter(t)
    sched.jobs[id] = w
    sched.njobs = sched.njobs + 1
    park(w)
    local ok, res = collect_job(id)
    if not ok then
        if res == nil then
            -- Past the task's deadline: the hook every task coroutine inherits raises its
            -- timeout within 10,000 instructions; this loop only gives it those.
            for _ = 1, 10000000 do end
            raise("timed out")
        end
        raise(res)
    end
    return res
end

local M = {}

local function spawn_in(cur, fn, ...)
    local sched = cur.sched
    local args = pack(...)
    local g = {sched = sched}
    g.co = co_create(function() return fn(unpack(args, 1, args.n)) end)
    GOS[g.co] = g
    sched.live = sched.live + 1
    if cur.owner then  -- starts at once: its first blocking call is under way before we go on
        resume(g)
        check_failure(sched)
    else
        push(sched.ready, g)
    end
    return g
end

local function need_function(fn, what)
    if type(fn) ~= "function" then
        raise(fmt("%s expects a function, got %s", what, type(fn)))
    end
end

function M.spawn(fn, ...)
    need_function(fn, "goroutine.spawn")
    spawn_in(current(), fn, ...)
end

function M.spawn_many(count, fn)
    if mtype(count) ~= "integer" or count < 0 then
        raise("goroutine.spawn_many expects a count (a whole number >= 0)")
    end
    need_function(fn, "goroutine.spawn_many")
    local cur = current()
    for i = 1, count do spawn_in(cur, fn, i) end
end

local function to_seconds(value, what)
    if type(value) == "number" then
        if value < 0 then raise(what .. ": a duration cannot be negative") end
        return value / 1000
    end
    if type(value) == "string" then
        local s = parse_duration(value)
        return s
    end
    raise(fmt("%s expects milliseconds (a number) or a duration like \"500ms\", got %s",
              what, type(value)))
end

local function sleep_for(seconds)
    local cur = current()
    if seconds <= 0 then
        if cur.owner then
            run_ready(cur.sched)
            check_failure(cur.sched)
        elseif co_isyieldable() then
            co_yield()
        end
        return
    end
    local w = waiter(cur)
    add_timer(cur.sched, seconds, w, -1)
    park(w)
end

function M.sleep(ms)
    local seconds = to_seconds(ms, "goroutine.sleep")
    sleep_for(seconds)
end

function M.yield()
    sleep_for(0)
end

-- wait groups ------------------------------------------------------------------------------
local WaitGroup = {}
WaitGroup.__index = WaitGroup

function M.wait_group() return setmetatable({n = 0, waiters = {}}, WaitGroup) end

function WaitGroup:add(delta)
    if delta == nil then delta = 1 end
    if mtype(delta) ~= "integer" then raise("wait_group:add expects a whole number") end
    local n = self.n + delta
    if n < 0 then raise("goroutine: negative wait group counter (more done() than add())") end
    self.n = n
    if n == 0 then
        local ws = self.waiters
        self.waiters = {}
        for i = 1, #ws do fire(ws[i], 0) end
    end
end

function WaitGroup:done() self:add(-1) end

function WaitGroup:wait()
    if self.n == 0 then return end
    local w = waiter(current())
    self.waiters[#self.waiters + 1] = w
    park(w)
end

function WaitGroup:count() return self.n end

-- channels ---------------------------------------------------------------------------------
local Channel = {}
Channel.__index = Channel

local DIRECTIONS = {bidirectional = true, send = true, receive = true}

function M.channel(size, direction)
    if size == nil then size = 0 end
    if mtype(size) ~= "integer" or size < 0 then
        raise("goroutine.channel(size): size must be a whole number >= 0")
    end
    if direction ~= nil and not DIRECTIONS[direction] then
        raise("goroutine.channel: direction must be \"bidirectional\", \"send\" or \"receive\"")
    end
    return setmetatable({size = size, buf = queue(), recvq = queue(), sendq = queue(),
                         closed = false, direction = direction or "bidirectional"}, Channel)
end

local function box(v) if v == nil then return NIL end return v end
local function unbox(v) if v == NIL then return nil end return v end

local function live_entry(q)  -- the first queued entry still waiting (a select may be done)
    while true do
        local e = pop(q)
        if e == nil or not e.w.fired then return e end
    end
end

local function live_waiter(q)  -- the same, for queues of plain waiters
    while true do
        local w = pop(q)
        if w == nil or not w.fired then return w end
    end
end

local function send_now(ch, v)
    local r = live_entry(ch.recvq)
    if r then
        fire(r.w, r.case, v, true)
        return true
    end
    if qlen(ch.buf) < ch.size then
        push(ch.buf, box(v))
        return true
    end
    return false
end

local function receive_now(ch)  -- ready, value, ok
    if qlen(ch.buf) > 0 then
        local v = pop(ch.buf)
        local s = live_entry(ch.sendq)
        if s then
            push(ch.buf, s.value)
            fire(s.w, s.case, nil, true)
        end
        return true, unbox(v), true
    end
    local s = live_entry(ch.sendq)
    if s then
        fire(s.w, s.case, nil, true)
        return true, unbox(s.value), true
    end
    if ch.closed then return true, nil, false end
    return false
end

local function need_channel(ch, what)
    if getmetatable(ch) ~= Channel then
        raise(fmt("%s expects a channel (made by goroutine.channel), got %s", what, type(ch)))
    end
end

-- send and receive without the checks: for the methods below, and for goroutine_flow.lua's
-- stages, which own their channels whatever direction the user's input was given.
local function send(ch, v)
    if ch.closed then return false, "send on closed channel" end
    if send_now(ch, v) then return true end
    local w = waiter(current())
    push(ch.sendq, {w = w, case = 1, value = box(v)})
    park(w)
    if not w.ok then return false, "send on closed channel" end
    return true
end

local function receive(ch)
    local ready, v, ok = receive_now(ch)
    if ready then return v, ok end
    local w = waiter(current())
    push(ch.recvq, {w = w, case = 1})
    park(w)
    return w.value, w.ok
end

local function checked(ch, what, op)
    need_channel(ch, what)
    if op == "send" and ch.direction == "receive" then
        raise("cannot send on a receive-only channel")
    elseif op == "receive" and ch.direction == "send" then
        raise("cannot receive on a send-only channel")
    end
end

function Channel:send(v)
    checked(self, "channel:send", "send")
    local ok, err = send(self, v)
    return ok, err
end

function Channel:receive()
    checked(self, "channel:receive", "receive")
    local v, ok = receive(self)
    return v, ok
end

function Channel:try_send(v)
    need_channel(self, "channel:try_send")
    if self.direction == "receive" then raise("cannot send on a receive-only channel") end
    if self.closed then return false, "send on closed channel" end
    return send_now(self, v)
end

function Channel:try_receive()
    need_channel(self, "channel:try_receive")
    if self.direction == "send" then raise("cannot receive on a send-only channel") end
    local ready, v, ok = receive_now(self)
    if ready then return v, ok end
    return nil, false
end

function Channel:close()
    need_channel(self, "channel:close")
    if self.closed then return false, "channel already closed" end
    self.closed = true
    while true do
        local r = live_entry(self.recvq)
        if not r then break end
        fire(r.w, r.case, nil, false)
    end
    while true do
        local s = live_entry(self.sendq)
        if not s then break end
        fire(s.w, s.case, nil, false)
    end
    return true
end

function Channel:len() return qlen(self.buf) end
function Channel:cap() return self.size end
function Channel:is_closed() return self.closed end

function Channel:range(fn)
    need_function(fn, "channel:range")
    while true do
        local v, ok = self:receive()
        if not ok then break end
        fn(v)
    end
end

-- The function forms the Go module exports next to the methods.
function M.channel_send(ch, v)
    checked(ch, "goroutine.channel_send", "send")
    local a, b = send(ch, v)
    return a, b
end
function M.channel_receive(ch)
    checked(ch, "goroutine.channel_receive", "receive")
    local a, b = receive(ch)
    return a, b
end
function M.channel_close(ch)
    need_channel(ch, "goroutine.channel_close")
    local a, b = Channel.close(ch)
    return a, b
end
function M.channel_len(ch) need_channel(ch, "goroutine.channel_len"); return qlen(ch.buf) end
function M.channel_cap(ch) need_channel(ch, "goroutine.channel_cap"); return ch.size end

-- select -----------------------------------------------------------------------------------
-- Cases: {channel = ch, receive = true, handler = fn(value, ok)}, {channel = ch, send = v,
-- handler = fn(ok)}, {default = true, handler = fn()}. The first ready case wins (in order);
-- returns its index (and, for a receive, the value and ok); -1 when a timeout expired.
local function chosen(k, v, ok)
    local h = k.c.handler
    if h ~= nil then
        if k.receive then h(v, ok) else h(ok) end
    end
    return k.i, v, ok
end

local function select_cases(cases, timeout, what)
    if type(cases) ~= "table" then raise(what .. " expects a list of cases") end
    local default, list = nil, {}
    for i, c in ipairs(cases) do
        if type(c) ~= "table" then raise(fmt("%s: case %d must be a table", what, i)) end
        if c.handler ~= nil and type(c.handler) ~= "function" then
            raise(fmt("%s: case %d: handler must be a function", what, i))
        end
        if c.default then
            default = {i = i, c = c}
        else
            if getmetatable(c.channel) ~= Channel then
                raise(fmt("%s: case %d needs channel = a channel", what, i))
            end
            local receive = c.receive ~= nil and c.receive ~= false
            if not receive and c.send == nil then
                raise(fmt("%s: case %d needs receive = true or send = value", what, i))
            end
            list[#list + 1] = {i = i, c = c, ch = c.channel, receive = receive}
        end
    end
    for _, k in ipairs(list) do
        if k.receive then
            local ready, v, ok = receive_now(k.ch)
            if ready then local a, b, c = chosen(k, v, ok); return a, b, c end
        elseif k.ch.closed then
            local a, b, c = chosen(k, nil, false); return a, b, c
        elseif send_now(k.ch, k.c.send) then
            local a, b, c = chosen(k, nil, true); return a, b, c
        end
    end
    if default then
        if default.c.handler then default.c.handler() end
        return default.i
    end
    if timeout ~= nil and timeout <= 0 then return -1 end
    if #list == 0 then
        if timeout == nil then raise(what .. ": no cases to wait on") end
        sleep_for(timeout)
        return -1
    end
    local cur = current()
    local w = waiter(cur)
    for n, k in ipairs(list) do
        if k.receive then push(k.ch.recvq, {w = w, case = n})
        else push(k.ch.sendq, {w = w, case = n, value = box(k.c.send)}) end
    end
    if timeout ~= nil then add_timer(cur.sched, timeout, w, -1) end
    park(w)
    if w.case == -1 then return -1 end
    local a, b, c = chosen(list[w.case], w.value, w.ok)
    return a, b, c
end

function M.select(cases)
    local a, b, c = select_cases(cases, nil, "goroutine.select")
    return a, b, c
end

function M.select_timeout(ms, cases)
    local seconds = to_seconds(ms, "goroutine.select_timeout")
    local index = select_cases(cases, seconds, "goroutine.select_timeout")
    if index == -1 then return true, nil end
    return false, index
end

-- What goroutine_sync.lua builds on.
local K = {raise = raise, add_timer = add_timer, current = current, fire = fire,
           live_waiter = live_waiter, need_function = need_function, park = park, push = push,
           qlen = qlen, queue = queue, spawn_in = spawn_in, to_seconds = to_seconds,
           waiter = waiter, now = now, wall = wall, need_channel = need_channel, send = send,
           receive = receive}
return {M = M, go_block_call = go_block_call, K = K}

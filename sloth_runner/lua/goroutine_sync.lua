-- Mutexes, semaphores, once, atomics, async/await, timeout, map and pools: built on the
-- scheduler of goroutine_sched.lua, which hands over its module table and helpers.
local M, K = ...
local type, tostring, setmetatable, getmetatable, ipairs, pairs, error, select =
      type, tostring, setmetatable, getmetatable, ipairs, pairs, error, select
local pack, unpack, mtype, fmt = table.pack, table.unpack, math.type, string.format
local raise = K.raise
local add_timer, current, fire, live_waiter, need_function, park, push, qlen, queue, spawn_in, to_seconds, waiter =
      K.add_timer, K.current, K.fire, K.live_waiter, K.need_function, K.park, K.push, K.qlen, K.queue, K.spawn_in, K.to_seconds, K.waiter
-- mutexes, semaphores, once, atomics ----------------------------------------------------
local Mutex = {}
Mutex.__index = Mutex

function M.mutex() return setmetatable({locked = false, waiters = queue()}, Mutex) end

function Mutex:lock()
    if not self.locked then self.locked = true; return end
    local w = waiter(current())
    push(self.waiters, w)
    park(w)  -- unlock handed the mutex over to us
end

function Mutex:unlock()
    if not self.locked then raise("goroutine: unlock of an unlocked mutex") end
    local w = live_waiter(self.waiters)
    if w then fire(w, 0) else self.locked = false end
end

function Mutex:try_lock()
    if self.locked then return false end
    self.locked = true
    return true
end

local RWMutex = {}
RWMutex.__index = RWMutex

function M.rwmutex()
    return setmetatable({writer = false, readers = 0, wq = queue(), rq = queue()}, RWMutex)
end

function RWMutex:lock()
    if not self.writer and self.readers == 0 then self.writer = true; return end
    local w = waiter(current())
    push(self.wq, w)
    park(w)
end

local function release_readers(self)
    while true do
        local r = live_waiter(self.rq)
        if not r then break end
        self.readers = self.readers + 1
        fire(r, 0)
    end
end

function RWMutex:unlock()
    if not self.writer then raise("goroutine: unlock of an unlocked rwmutex") end
    local w = live_waiter(self.wq)
    if w then fire(w, 0); return end  -- the writer flag passes to the next writer
    self.writer = false
    release_readers(self)
end

function RWMutex:rlock()
    if not self.writer and qlen(self.wq) == 0 then self.readers = self.readers + 1; return end
    local w = waiter(current())
    push(self.rq, w)
    park(w)
end

function RWMutex:runlock()
    if self.readers <= 0 then raise("goroutine: runlock of an rwmutex not read-locked") end
    self.readers = self.readers - 1
    if self.readers == 0 then
        local w = live_waiter(self.wq)
        if w then self.writer = true; fire(w, 0) end
    end
end

function RWMutex:try_lock()
    if self.writer or self.readers > 0 then return false end
    self.writer = true
    return true
end

function RWMutex:try_rlock()
    if self.writer or qlen(self.wq) > 0 then return false end
    self.readers = self.readers + 1
    return true
end

local Semaphore = {}
Semaphore.__index = Semaphore

function M.semaphore(n)
    if mtype(n) ~= "integer" or n <= 0 then
        raise("goroutine.semaphore(n): n must be a whole number > 0")
    end
    return setmetatable({size = n, free = n, waiters = queue()}, Semaphore)
end

function Semaphore:acquire()
    if self.free > 0 then self.free = self.free - 1; return end
    local w = waiter(current())
    push(self.waiters, w)
    park(w)
end

function Semaphore:release()
    local w = live_waiter(self.waiters)
    if w then fire(w, 0); return end
    if self.free >= self.size then raise("goroutine: semaphore released more than acquired") end
    self.free = self.free + 1
end

function Semaphore:try_acquire()
    if self.free <= 0 then return false end
    self.free = self.free - 1
    return true
end

function Semaphore:available() return self.free end
function Semaphore:capacity() return self.size end

local Once = {}
Once.__index = Once

function M.once() return setmetatable({state = "new", waiters = {}}, Once) end

function Once:call(fn, ...)
    need_function(fn, "once:call")
    if self.state == "done" then return end
    if self.state == "running" then
        local w = waiter(current())
        self.waiters[#self.waiters + 1] = w
        park(w)
        return
    end
    self.state = "running"
    local r = pack(pcall(fn, ...))
    self.state = "done"
    local ws = self.waiters
    self.waiters = {}
    for i = 1, #ws do fire(ws[i], 0) end
    if not r[1] then error(r[2], 0) end
end
Once["do"] = Once.call

local Atomic = {}
Atomic.__index = Atomic

function M.atomic_int(v)
    if v == nil then v = 0 end
    if mtype(v) ~= "integer" then raise("goroutine.atomic_int expects a whole number") end
    return setmetatable({v = v}, Atomic)
end

function Atomic:add(d) self.v = self.v + (d or 1); return self.v end
function Atomic:load() return self.v end
function Atomic:store(v) self.v = v end
function Atomic:swap(v) local old = self.v; self.v = v; return old end
function Atomic:compare_and_swap(old, new)
    if self.v ~= old then return false end
    self.v = new
    return true
end
Atomic.get, Atomic.set, Atomic.increment = Atomic.load, Atomic.store, Atomic.add

-- async / await / timeout --------------------------------------------------------------------
local Handle = {}
Handle.__index = Handle

local function async_in(cur, fn, ...)
    local h = setmetatable({done = false, waiters = {}}, Handle)
    spawn_in(cur, function(...)
        local r = pack(pcall(fn, ...))
        h.done, h.ok = true, r[1]
        if r[1] then h.values = pack(unpack(r, 2, r.n)) else h.err = tostring(r[2]) end
        local ws = h.waiters
        h.waiters = {}
        for i = 1, #ws do fire(ws[i], 0) end
    end, ...)
    return h
end

function M.async(fn, ...)
    need_function(fn, "goroutine.async")
    local h = async_in(current(), fn, ...)
    return h
end

local function await(h, what)
    if getmetatable(h) ~= Handle then
        raise(what .. " expects a handle made by goroutine.async")
    end
    if not h.done then
        local w = waiter(current())
        h.waiters[#h.waiters + 1] = w
        park(w)
    end
    if h.ok then return true, unpack(h.values, 1, h.values.n) end
    return false, h.err
end

function M.await(h)
    local r = pack(await(h, "goroutine.await"))
    return unpack(r, 1, r.n)
end

function M.await_all(handles)
    if type(handles) ~= "table" then raise("goroutine.await_all expects a list of handles") end
    local out = {}
    for i, h in ipairs(handles) do
        local r = pack(await(h, "goroutine.await_all"))
        if r[1] then out[i] = {success = true, values = {unpack(r, 2, r.n)}}
        else out[i] = {success = false, error = r[2]} end
    end
    return out
end

function M.timeout(ms, fn, ...)
    local seconds = to_seconds(ms, "goroutine.timeout")
    need_function(fn, "goroutine.timeout")
    local cur = current()
    local h = async_in(cur, fn, ...)
    if not h.done then
        local w = waiter(cur)
        h.waiters[#h.waiters + 1] = w
        add_timer(cur.sched, seconds, w, -1)
        park(w)
    end
    if not h.done then return false, "timeout exceeded" end
    local r = pack(await(h, "goroutine.timeout"))
    return unpack(r, 1, r.n)
end

-- map and pools ----------------------------------------------------------------------------
function M.map(list, fn, limit)
    if type(list) ~= "table" then raise("goroutine.map expects a list") end
    need_function(fn, "goroutine.map")
    if limit ~= nil and (mtype(limit) ~= "integer" or limit < 1) then
        raise("goroutine.map: the limit must be a whole number >= 1")
    end
    local n = #list
    local results, failures = {}, {}
    if n == 0 then return results end
    local sem = limit and M.semaphore(limit)
    local wg = M.wait_group()
    wg:add(n)
    local cur = current()
    for i = 1, n do
        local item = list[i]
        spawn_in(cur, function()
            if sem then sem:acquire() end
            local ok, r = pcall(fn, item, i)
            if sem then sem:release() end
            if ok then results[i] = r else failures[#failures + 1] = {i, r} end
            wg:done()
        end)
    end
    wg:wait()
    if #failures > 0 then
        table.sort(failures, function(a, b) return a[1] < b[1] end)
        raise(fmt("goroutine.map: item %d failed: %s", failures[1][1], tostring(failures[1][2])))
    end
    return results
end

local Pool = {}
Pool.__index = Pool

local function new_pool(workers, name)
    return setmetatable({name = name, workers = workers, sem = M.semaphore(workers),
                         wg = M.wait_group(), active = 0, completed = 0, failed = 0,
                         queued = 0, closed = false, seq = 0, results = {}}, Pool)
end

function M.pool(workers)
    if workers == nil then workers = 4 end
    if mtype(workers) ~= "integer" or workers < 1 then
        raise("goroutine.pool(n): n must be a whole number >= 1")
    end
    return new_pool(workers, nil)
end

function Pool:submit(fn, ...)
    if self.closed then return nil, "pool is closed" end
    need_function(fn, "pool:submit")
    self.seq = self.seq + 1
    local id = (self.name or "pool") .. "-" .. self.seq
    self.queued = self.queued + 1
    self.wg:add(1)
    local pool = self
    spawn_in(current(), function(...)
        pool.sem:acquire()
        pool.queued = pool.queued - 1
        pool.active = pool.active + 1
        local r = pack(pcall(fn, ...))
        pool.active = pool.active - 1
        pool.sem:release()
        if r[1] then
            pool.completed = pool.completed + 1
            pool.results[id] = {success = true, values = {unpack(r, 2, r.n)}}
        else
            pool.failed = pool.failed + 1
            pool.results[id] = {success = false, error = tostring(r[2])}
        end
        pool.wg:done()
    end, ...)
    return id
end

function Pool:wait() self.wg:wait(); return true end
function Pool:close() self.wg:wait(); self.closed = true; return true end
function Pool:result(id) return self.results[id] end
function Pool:stats()
    return {name = self.name, workers = self.workers, active = self.active,
            completed = self.completed, failed = self.failed, queued = self.queued}
end

local POOLS = {}

function M.pool_create(name, options)
    if type(name) ~= "string" then raise("goroutine.pool_create expects a name") end
    local workers = type(options) == "table" and options.workers or 4
    if mtype(workers) ~= "integer" or workers < 1 then
        raise("goroutine.pool_create: workers must be a whole number >= 1")
    end
    POOLS[name] = new_pool(workers, name)
    return true
end

local function named(name)
    local pool = POOLS[name]
    if pool == nil then return nil, "pool not found: " .. tostring(name) end
    return pool
end

function M.pool_submit(name, fn, ...)
    local pool, err = named(name)
    if not pool then return nil, err end
    local id, e = pool:submit(fn, ...)
    return id, e
end

function M.pool_wait(name)
    local pool, err = named(name)
    if not pool then return false, err end
    pool.wg:wait()
    return true
end

function M.pool_close(name)
    local pool, err = named(name)
    if not pool then return false, err end
    pool.wg:wait()
    pool.closed = true
    POOLS[name] = nil
    return true
end

function M.pool_stats(name)
    local pool, err = named(name)
    if not pool then return nil, err end
    return pool:stats()
end

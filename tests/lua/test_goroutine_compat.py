"""The parts of the Go project's goroutine module that its examples use beyond spawn, channels
and the sync primitives: condition variables, contexts, pipelines, fan-out/fan-in, the
channel_* function forms, and semaphores in the shapes the examples put them in. Our own
workflows, run through the real command."""

from __future__ import annotations

from tests.conftest import cli_json, tasks_by_name

DEADLOCK = ("goroutine: deadlock: everything in this task is waiting (on channels, wait groups, "
            "mutexes ...) and nothing left can wake it")


def run(workflow_file, source: str) -> dict[str, dict]:
    _, doc = cli_json("run", "-f", workflow_file(source))
    return tasks_by_name(doc)


def test_cond_signal_wakes_one_waiter_and_broadcast_wakes_the_rest(workflow_file):
    tasks = run(workflow_file, '''
    task("signal"):command(function()
        local cond = goroutine.cond()
        local mu = cond:get_mutex()
        local woken, wg, waiting = goroutine.channel(3), goroutine.wait_group(), 0
        for i = 1, 3 do
            wg:add(1)
            goroutine.spawn(function()
                mu:lock()
                waiting = waiting + 1
                cond:wait()
                woken:send(i)
                mu:unlock()
                wg:done()
            end)
        end
        -- spawned from the task, each goroutine ran until it waited: all three are in wait(),
        -- which let go of the mutex
        local free = mu:try_lock()
        cond:signal()
        mu:unlock()
        local first = woken:receive()
        goroutine.yield(); goroutine.yield()
        local after_signal = woken:len()
        mu:lock(); cond:broadcast(); mu:unlock()
        wg:wait()
        return true, "ok", {waiting = waiting, free = free, first = first,
                            after_signal = after_signal, after_broadcast = woken:len()}
    end):build()
    task("own_mutex"):command(function()
        -- goroutine.cond(mu): the caller's mutex; a bounded queue of one slot
        local mu = goroutine.mutex()
        local cond = goroutine.cond(mu)
        local slot, got, wg = nil, {}, goroutine.wait_group()
        wg:add(1)
        goroutine.spawn(function()
            for _ = 1, 4 do
                mu:lock()
                while slot == nil do cond:wait() end
                got[#got + 1] = slot
                slot = nil
                cond:broadcast()
                mu:unlock()
            end
            wg:done()
        end)
        for i = 1, 4 do
            mu:lock()
            while slot ~= nil do cond:wait() end
            slot = i * 10
            cond:broadcast()
            mu:unlock()
        end
        wg:wait()
        return true, "ok", {same = cond:get_mutex() == mu, got = table.concat(got, ",")}
    end):build()
    task("never_signalled"):command(function()
        local cond = goroutine.cond()
        cond:get_mutex():lock()
        cond:wait()
    end):build()
    task("not_a_mutex"):command(function()
        goroutine.cond(42)
    end):build()
    task("wait_unlocked"):command(function()
        goroutine.cond():wait()
    end):build()
    ''')
    assert tasks["signal"]["outputs"] == {"waiting": 3, "free": True, "first": 1,
                                          "after_signal": 0, "after_broadcast": 2}
    assert tasks["own_mutex"]["outputs"] == {"same": True, "got": "10,20,30,40"}
    assert tasks["never_signalled"]["error"].endswith(f"/wf.lua:60: {DEADLOCK}")
    assert tasks["not_a_mutex"]["error"].endswith(
        "/wf.lua:63: goroutine.cond(mutex) expects a mutex (made by goroutine.mutex), got number")
    assert tasks["wait_unlocked"]["error"].endswith(
        "/wf.lua:66: goroutine: unlock of an unlocked mutex")


def test_context_cancel_and_timeout_reach_goroutines(workflow_file):
    tasks = run(workflow_file, '''
    task("timeout"):command(function()
        local root = goroutine.context()
        local ctx = root:with_timeout(100)
        local why = goroutine.channel(1)
        goroutine.spawn(function()
            local _, open = ctx:done():receive()  -- woken by the deadline: nobody cancels
            why:send(ctx:err() .. "/" .. tostring(open))
        end)
        return true, "ok", {why = why:receive(), root = root:err() == nil,
                            polled = ctx:is_cancelled()}
    end):build()
    task("cascade"):command(function()
        local root, cancel_root = goroutine.context()
        local child, cancel_child = root:with_cancel()
        local grand = child:with_timeout("1h")
        local other = root:with_cancel()
        cancel_child()
        local wg, seen = goroutine.wait_group(), {}
        for i, c in ipairs({root, grand, other}) do
            wg:add(1)
            goroutine.spawn(function()
                goroutine.select({{channel = c:done(), receive = true}})
                seen[i] = c:err()
                wg:done()
            end)
        end
        local before = {tostring(root:err()), tostring(grand:err()), tostring(other:err())}
        cancel_root()
        wg:wait()
        local late = root:with_timeout(1000)
        return true, "ok", {before = table.concat(before, ","), seen = table.concat(seen, ","),
                            late = late:err()}
    end):build()
    task("deadlines"):command(function()
        local root = goroutine.context()
        local at = 4102444800000  -- 2100-01-01, in milliseconds since the epoch
        local far = root:with_deadline(at)
        local near = far:with_timeout(30)
        local inner = near:with_deadline(at)  -- the parent's earlier deadline wins
        local r_dl, r_has = root:deadline()
        local f_dl = far:deadline()
        local n_dl, n_has = near:deadline()
        local i_dl = inner:deadline()
        local past = root:with_deadline(1000)
        local stop = goroutine.select_timeout(5000, {{channel = inner:done(), receive = true}})
        return true, "ok", {root = tostring(r_dl) .. "/" .. tostring(r_has), far = f_dl == at,
                            near = n_has and n_dl < at and n_dl == i_dl, woke = not stop,
                            inner = inner:err(), past = past:err(), far_err = far:err() == nil}
    end):build()
    task("unarmed"):command(function()
        -- an hour-long context nobody waits on does not hide a deadlock for an hour
        local ctx = goroutine.context():with_timeout("1h")
        goroutine.channel():receive()
    end):build()
    task("task_timeout"):timeout("1s"):command(function()
        -- a goroutine and its task waiting on an hour-long context end with the task
        local ctx = goroutine.context():with_timeout("1h")
        goroutine.spawn(function() ctx:done():receive() end)
        ctx:done():receive()
    end):build()
    ''')
    assert tasks["timeout"]["outputs"] == {"why": "context deadline exceeded/false", "root": True,
                                           "polled": True}
    assert 0.1 <= tasks["timeout"]["duration_s"] < 5
    assert tasks["cascade"]["outputs"] == {
        "before": "nil,context canceled,nil",
        "seen": "context canceled,context canceled,context canceled",
        "late": "context canceled"}
    assert tasks["deadlines"]["outputs"] == {
        "root": "nil/false", "far": True, "near": True, "woke": True,
        "inner": "context deadline exceeded", "past": "context deadline exceeded",
        "far_err": True}
    assert tasks["unarmed"]["error"].endswith(f"/wf.lua:54: {DEADLOCK}")
    assert tasks["unarmed"]["duration_s"] < 5
    assert tasks["task_timeout"]["status"] == "timeout"
    assert tasks["task_timeout"]["duration_s"] < 10


def test_pipeline_fan_out_and_fan_in(workflow_file):
    tasks = run(workflow_file, '''
    local function feed(ch, n)
        goroutine.spawn(function()
            for i = 1, n do ch:send(i) end
            ch:close()
        end)
    end
    local function drain(ch)
        local got = {}
        ch:range(function(v) got[#got + 1] = v end)
        table.sort(got)
        return table.concat(got, ",")
    end
    task("pipeline"):command(function()
        local input = goroutine.channel()
        feed(input, 6)
        local out = goroutine.pipeline(input, {
            {workers = 3, fn = function(v)
                return tonumber(exec.run("sleep 0.4; echo " .. v * 2).stdout)
            end},
            {fn = function(v) return v + 1 end},
        })
        return true, "ok", {got = drain(out), closed = out:is_closed(), cap = out:cap()}
    end):build()
    task("fan"):command(function()
        local input = goroutine.channel()
        feed(input, 4)
        local outs = goroutine.fan_out(input, 3)
        local first = {}
        for i, ch in ipairs(outs) do first[i] = ch:receive() end  -- each output gets every value
        local merged = goroutine.fan_in(outs)
        return true, "ok", {n = #outs, first = table.concat(first, ","), rest = drain(merged)}
    end):build()
    task("stage_fails"):command(function()
        local input = goroutine.channel(1)
        input:send(7); input:close()
        local out = goroutine.pipeline(input, {{fn = function(v)
            error("cannot process " .. v)
        end}})
        out:receive()
    end):build()
    task("never_fed"):command(function()
        local out = goroutine.pipeline(goroutine.channel(), {{fn = tostring}})
        out:receive()
    end):build()
    task("bad_stage"):command(function()
        goroutine.pipeline(goroutine.channel(), {{workers = 0, fn = tostring}})
    end):build()
    ''')
    pipeline = tasks["pipeline"]
    assert pipeline["outputs"] == {"got": "3,5,7,9,11,13", "closed": True, "cap": 10}
    assert pipeline["duration_s"] < 2.0  # three workers: two rounds of 0.4 s, not six
    assert tasks["fan"]["outputs"] == {"n": 3, "first": "1,1,1", "rest": "2,2,2,3,3,3,4,4,4"}
    assert tasks["stage_fails"]["error"].endswith(
        "/wf.lua:38: goroutine.pipeline: stage 1: cannot process 7")
    assert tasks["never_fed"]["error"].endswith(f"/wf.lua:44: {DEADLOCK}")
    assert tasks["bad_stage"]["error"].endswith(
        "/wf.lua:47: goroutine.pipeline: stage 1: workers must be a whole number >= 1")


def test_channel_function_forms(workflow_file):
    tasks = run(workflow_file, '''
    task("forms"):command(function()
        local ch = goroutine.channel(2)
        local o = {}
        o.sent = goroutine.channel_send(ch, "a")
        o.len, o.cap = goroutine.channel_len(ch), goroutine.channel_cap(ch)
        goroutine.spawn(function()
            goroutine.channel_send(ch, "b")
            goroutine.channel_send(ch, "c")
        end)
        o.values = goroutine.channel_receive(ch) .. goroutine.channel_receive(ch)
            .. goroutine.channel_receive(ch)
        o.closed = goroutine.channel_close(ch)
        o.again = select(2, goroutine.channel_close(ch))
        o.late_send = select(2, goroutine.channel_send(ch, "d"))
        o.drained = select(2, goroutine.channel_receive(ch))
        return true, "ok", o
    end):build()
    task("not_a_channel"):command(function()
        goroutine.channel_len({})
    end):build()
    task("receive_only"):command(function()
        goroutine.channel_send(goroutine.channel(1, "receive"), 1)
    end):build()
    ''')
    assert tasks["forms"]["outputs"] == {
        "sent": True, "len": 1, "cap": 2, "values": "abc", "closed": True,
        "again": "channel already closed", "late_send": "send on closed channel",
        "drained": False}
    assert tasks["not_a_channel"]["error"].endswith(
        "/wf.lua:20: goroutine.channel_len expects a channel (made by goroutine.channel), "
        "got table")
    assert tasks["receive_only"]["error"].endswith(
        "/wf.lua:23: cannot send on a receive-only channel")


def test_semaphores_as_the_examples_use_them(workflow_file):
    """The Go project's semaphore example never ends: its 'rate limiter' refills by
    try_acquire, which takes tokens, so ten requests wait for tokens no one returns while a
    refill loop sleeps on (Go's module hangs the same way). Here that shape ends with the
    task's timeout, and without the ticking loop it is a deadlock; the rest of the example's
    uses limit concurrency as they should."""
    tasks = run(workflow_file, '''
    task("limit"):command(function()
        local sem, wg, active, peak = goroutine.semaphore(2), goroutine.wait_group(), 0, 0
        for i = 1, 6 do
            wg:add(1)
            goroutine.spawn(function()
                sem:acquire()
                active = active + 1
                if active > peak then peak = active end
                exec.run("sleep 0.2")
                active = active - 1
                sem:release()
                wg:done()
            end)
        end
        wg:wait()
        return true, "ok", {peak = peak, available = sem:available()}
    end):build()
    task("drained_with_ticker"):timeout("1s"):command(function()
        local limiter, wg = goroutine.semaphore(2), goroutine.wait_group()
        goroutine.spawn(function()
            while true do goroutine.sleep(100); limiter:try_acquire() end
        end)
        for _ = 1, 4 do
            wg:add(1)
            goroutine.spawn(function() limiter:acquire(); wg:done() end)
        end
        wg:wait()
    end):build()
    task("drained"):command(function()
        local limiter, wg = goroutine.semaphore(2), goroutine.wait_group()
        for _ = 1, 4 do
            wg:add(1)
            goroutine.spawn(function() limiter:acquire(); wg:done() end)
        end
        wg:wait()
    end):build()
    ''')
    limit = tasks["limit"]
    assert limit["outputs"] == {"peak": 2, "available": 2}
    assert limit["duration_s"] >= 0.6  # six 0.2 s holds, two at a time
    assert tasks["drained_with_ticker"]["status"] == "timeout"
    assert tasks["drained_with_ticker"]["duration_s"] < 10
    assert tasks["drained"]["error"].endswith(f"/wf.lua:36: {DEADLOCK}")


def test_the_new_parts_are_compiled_only_when_goroutine_is_touched(workflow_file):
    tasks = run(workflow_file, '''
    task("t"):command(function()
        local before = rawget(goroutine, "pipeline")
        local cond = goroutine.cond
        return true, "ok", {before = tostring(before), after = type(rawget(goroutine, "fan_in")),
                            cond = type(cond)}
    end):build()
    ''')
    assert tasks["t"]["outputs"] == {"before": "nil", "after": "function", "cond": "function"}

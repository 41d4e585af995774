"""The Go project's modules as workflows use them: goroutine, io.popen, http/net, git working
copies, state (TTL, compare_swap, with_lock) and log levels. Real processes, real servers on
127.0.0.1, real git repositories and SQLite."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time

import pytest

from tests.conftest import cli_json, gone_or_zombie, poll, tasks_by_name
from tests.services.test_git_ops import IDENTITY, origin, sh
from tests.services.test_http import Server, echo, flaky, json_route, slow

# -- goroutines -------------------------------------------------------------------------------
CONCURRENT = '''
task("fan_out"){timeout}:command(function()
    local wg = goroutine.wait_group()
    local out = {{}}
    for i = 1, 6 do
        wg:add(1)
        goroutine.spawn(function()
            out[i] = exec.run("sleep 0.5; echo " .. i).stdout
            wg:done()
        end)
    end
    wg:wait()
    return true, "ok", {{out = table.concat(out)}}
end):build()
task("neighbour"):command("sleep 0.5"):build()
'''


@pytest.mark.parametrize("timeout", ["", ':timeout("30s")'], ids=["here", "worker"])
def test_goroutines_wait_on_processes_in_parallel(run_lua, timeout):
    started = time.monotonic()
    res, _ = run_lua(CONCURRENT.format(timeout=timeout))
    elapsed = time.monotonic() - started
    assert res["fan_out"].status == "success", res["fan_out"].error
    assert res["fan_out"].outputs["out"] == "1\n2\n3\n4\n5\n6\n"
    # six sleeps of 0.5 s, one after the other, would take 3 s; the neighbour task ran meanwhile
    assert res["fan_out"].duration_s < 1.5 and elapsed < 2.0
    assert res["neighbour"].status == "success"


def test_channels_select_and_the_sync_primitives(run_lua):
    res, _ = run_lua('''
    task("t"):command(function()
        local o = {}
        -- producer / consumer over a buffered channel; receive after close
        local ch = goroutine.channel(2)
        goroutine.spawn(function()
            for i = 1, 5 do ch:send(i) end
            ch:close()
        end)
        local got = {}
        ch:range(function(v) got[#got + 1] = v end)
        o.range = table.concat(got, ",")
        local v, ok = ch:receive()
        o.after_close = tostring(v) .. "/" .. tostring(ok)
        o.send_closed = select(2, ch:send(1))
        o.close_twice = select(2, ch:close())
        -- an unbuffered channel hands over, nil included
        local u = goroutine.channel()
        goroutine.spawn(function() u:send(nil); u:send("x") end)
        local a, aok = u:receive()
        local b = u:receive()
        o.unbuffered = tostring(a) .. tostring(aok) .. b
        -- select: default when nothing is ready, else the ready case; select_timeout
        local c1, c2 = goroutine.channel(1), goroutine.channel(1)
        o.default = goroutine.select({
            {channel = c1, receive = true, handler = function() end},
            {default = true, handler = function() o.default_ran = true end},
        })
        goroutine.spawn(function() goroutine.sleep(20); c2:send("second") end)
        local idx, val = goroutine.select({
            {channel = c1, receive = true},
            {channel = c2, receive = true, handler = function(x) o.handled = x end},
        })
        o.selected = idx .. ":" .. val
        local timed_out = goroutine.select_timeout(30, {{channel = c1, receive = true}})
        o.timed_out = timed_out
        -- a mutex keeps a critical section with waits in it to one goroutine at a time
        local mu, wg = goroutine.mutex(), goroutine.wait_group()
        local inside, most, count = 0, 0, 0
        for i = 1, 5 do
            wg:add(1)
            goroutine.spawn(function()
                mu:lock()
                inside = inside + 1
                most = math.max(most, inside)
                goroutine.sleep(5)
                count = count + 1
                inside = inside - 1
                mu:unlock()
                wg:done()
            end)
        end
        wg:wait()
        o.mutex = most .. "/" .. count
        -- a semaphore bounds concurrency; map keeps order
        local sem, active, peak = goroutine.semaphore(2), 0, 0
        o.map = table.concat(goroutine.map({1, 2, 3, 4, 5}, function(x)
            sem:acquire()
            active = active + 1; peak = math.max(peak, active)
            goroutine.sleep(5)
            active = active - 1
            sem:release()
            return x * 10
        end), ",")
        o.peak = peak
        o.map_limit = table.concat(goroutine.map({"a", "b", "c"}, function(x, i)
            return x .. i end, 1), ",")
        -- pools, async/await, timeout, once, atomics, spawn_many
        local pool = goroutine.pool(2)
        for i = 1, 4 do pool:submit(function() goroutine.sleep(5); if i == 3 then error("no") end end) end
        pool:wait()
        local stats = pool:stats()
        o.pool = stats.completed .. "/" .. stats.failed .. "/" .. stats.workers
        goroutine.pool_create("named", {workers = 3})
        goroutine.pool_submit("named", function() end)
        goroutine.pool_wait("named")
        o.named = goroutine.pool_stats("named").completed
        goroutine.pool_close("named")
        o.closed_pool = select(2, goroutine.pool_submit("named", function() end))
        local h1 = goroutine.async(function() goroutine.sleep(5); return "v1", "v2" end)
        local h2 = goroutine.async(function() error("bad thing") end)
        local ok1, r1, r2 = goroutine.await(h1)
        o.await = tostring(ok1) .. r1 .. r2
        local all = goroutine.await_all({h1, h2})
        o.await_all = tostring(all[1].success) .. all[1].values[2] .. tostring(all[2].success)
        o.await_error = all[2].error:match("bad thing") ~= nil
        local sok, serr = goroutine.timeout(20, function() goroutine.sleep(5000) end)
        o.timeout_slow = tostring(sok) .. serr
        local tok, tv = goroutine.timeout("1s", function() return "quick" end)
        o.timeout_fast = tostring(tok) .. tv
        local once, calls = goroutine.once(), 0
        for _ = 1, 3 do once:call(function() calls = calls + 1 end) end
        o.once = calls
        local n = goroutine.atomic_int(5)
        n:add(2)
        o.atomic = n:load() .. tostring(n:compare_and_swap(7, 1)) .. n:load()
        local ids = {}
        goroutine.spawn_many(3, function(id) ids[#ids + 1] = id end)
        goroutine.sleep(0)
        o.spawn_many = #ids
        return true, "ok", o
    end):build()
    ''')
    assert res["t"].status == "success", res["t"].error
    o = res["t"].outputs
    assert o["range"] == "1,2,3,4,5" and o["after_close"] == "nil/false"
    assert o["send_closed"] == "send on closed channel"
    assert o["close_twice"] == "channel already closed"
    assert o["unbuffered"] == "niltruex"
    assert o["default"] == 2 and o["default_ran"] is True
    assert o["selected"] == "2:second" and o["handled"] == "second"
    assert o["timed_out"] is True
    assert o["mutex"] == "1/5"
    assert o["map"] == "10,20,30,40,50" and o["peak"] == 2
    assert o["map_limit"] == "a1,b2,c3"
    assert o["pool"] == "3/1/2" and o["named"] == 1
    assert o["closed_pool"] == "pool not found: named"
    assert o["await"] == "truev1v2" and o["await_all"] == "truev2false" and o["await_error"]
    assert o["timeout_slow"] == "falsetimeout exceeded" and o["timeout_fast"] == "truequick"
    assert o["once"] == 1 and o["atomic"] == "7true1" and o["spawn_many"] == 3


def test_goroutine_failures_are_errors_at_the_users_line(run_lua):
    res, _ = run_lua('''
    task("deadlock"):command(function()
        local ch = goroutine.channel()
        ch:receive()
    end):build()
    task("panic"):command(function()
        local wg = goroutine.wait_group()
        wg:add(1)
        goroutine.spawn(function()
            goroutine.sleep(1)
            error("disk full")
        end)
        wg:wait()
    end):build()
    task("map"):command(function()
        goroutine.map({1, 2, 3}, function(x) if x == 2 then error("item two") end end)
    end):build()
    task("args"):command(function()
        goroutine.spawn(42)
    end):build()
    task("job"):command(function()
        local h = goroutine.async(function() return exec.run({"/no/such/program"}) end)
        return goroutine.await(h)
    end):build()
    task("outside_job"):command(function()
        goroutine.spawn(function()
            exec.run("true", {bogus = 1})
        end)
        goroutine.sleep(10)
    end):build()
    ''')
    deadlock = res["deadlock"].error
    assert deadlock.endswith("wf.lua:4: goroutine: deadlock: everything in this task is "
                             "waiting (on channels, wait groups, mutexes ...) and nothing left "
                             "can wake it")
    assert res["panic"].error.endswith("wf.lua:11: disk full")
    assert "wf.lua:16: goroutine.map: item 2 failed: " in res["map"].error
    assert res["map"].error.endswith("wf.lua:16: item two")
    assert res["args"].error.endswith("wf.lua:19: goroutine.spawn expects a function, got number")
    assert res["job"].status == "failed" and "cannot start" in res["job"].error
    assert res["outside_job"].error.endswith("wf.lua:27: exec.run: unknown option 'bogus' "
                                             "(options: cwd, env, timeout)")


def test_a_timed_out_task_takes_its_goroutines_processes_with_it(run_lua, tmp_path):
    pidfile = tmp_path / "pid"
    res, _ = run_lua(f'''
    task("slow"):timeout("1s"):command(function()
        goroutine.spawn(function() exec.run("echo $$ > {pidfile}; exec sleep 30") end)
        goroutine.sleep(20000)
    end):build()
    ''')
    assert res["slow"].status == "timeout"
    pid = int(pidfile.read_text())
    assert poll(lambda: gone_or_zombie(pid), 5)


def test_goroutine_sleep_takes_milliseconds_or_a_duration(run_lua):
    res, _ = run_lua('''
    task("t"):command(function()
        local t0 = os.clock()
        goroutine.sleep("30ms")
        goroutine.sleep(30)
        goroutine.yield()
        return true
    end):build()
    task("bad"):command(function() goroutine.sleep("soon") end):build()
    ''')
    assert res["t"].status == "success" and res["t"].duration_s >= 0.06
    assert "wf.lua:9: bad duration 'soon'" in res["bad"].error


# -- io.popen ---------------------------------------------------------------------------------
def test_io_popen_reads_like_stock_lua(run_lua):
    res, _ = run_lua(r'''
    task("t"):command(function()
        local f = io.popen("printf 'first line\n12 3.5e1 0x1F\nab\ncd\n'")
        local o = {}
        o.line = f:read("l")
        o.n1, o.n2, o.n3 = f:read("n", "*n", "n")
        o.rest_of_line = f:read("L")
        o.two = f:read(2)
        o.all = f:read("a")
        o.eof_line = f:read("l") == nil
        o.eof_all = f:read("a")
        o.ok, o.how, o.code = f:close()
        local g = io.popen("exit 3")
        o.fail = table.concat({tostring(g:close())}, "")
        local _, how, code = io.popen("exit 3"):close()
        o.failed = how .. code
        local lines = {}
        for line in io.popen("printf 'a\nb\nc\n'"):lines() do lines[#lines + 1] = line end
        o.lines = table.concat(lines, "|")
        o.type = tostring(io.popen("true")):match("^file") ~= nil
        return true, "ok", o
    end):build()
    ''')
    assert res["t"].status == "success", res["t"].error
    o = res["t"].outputs
    assert o["line"] == "first line"
    assert (o["n1"], o["n2"], o["n3"]) == (12, 35.0, 31)
    assert o["rest_of_line"] == "\n" and o["two"] == "ab" and o["all"] == "\ncd\n"
    assert o["eof_line"] is True and o["eof_all"] == ""
    assert (o["ok"], o["how"], o["code"]) == (True, "exit", 0)
    assert o["fail"] == "nil" and o["failed"] == "exit3"
    assert o["lines"] == "a|b|c" and o["type"] is True


def test_io_popen_writes_and_runs_in_the_tasks_workdir_and_env(run_lua, tmp_path):
    res, recorder = run_lua(f'''
    task("t"):workdir({str(tmp_path)!r}):env({{GREETING = "hello"}}):command(function()
        local w = io.popen("cat > written.txt; echo done; echo complaint >&2", "w")
        w:write("x", 1, "\\n"):write("y\\n")
        local ok = w:close()
        local r = io.popen("pwd; echo $GREETING")
        local text = r:read("a")
        r:close()
        return ok, text
    end):build()
    ''')
    assert res["t"].status == "success", res["t"].error
    assert (tmp_path / "written.txt").read_text() == "x1\ny\n"
    assert res["t"].message == f"{tmp_path}\nhello\n"
    shown = [m for level, m, task in recorder.logs if task == "t"]
    assert "done\ncomplaint" in shown  # what the command printed is shown, not lost


def test_io_popen_errors(run_lua):
    res, _ = run_lua('''
    task("mode"):command(function() io.popen("true", "rw") end):build()
    task("closed"):command(function()
        local f = io.popen("true")
        f:close()
        f:read("a")
    end):build()
    task("format"):command(function() io.popen("true"):read("x") end):build()
    task("wrong_way"):command(function() io.popen("cat", "w"):read("a") end):build()
    ''')
    assert res["mode"].error.endswith("wf.lua:2: bad argument #2 to 'popen' (invalid mode)")
    assert res["closed"].error.endswith("wf.lua:6: attempt to use a closed file")
    assert "wf.lua:8: bad argument to 'read' (invalid format 'x')" in res["format"].error
    assert "wf.lua:9: io.popen: this handle is not readable" in res["wrong_way"].error


def test_a_popen_read_holds_up_no_other_task_and_dies_with_a_timed_out_task(run_lua, tmp_path):
    pidfile = tmp_path / "pid"
    started = time.monotonic()
    res, _ = run_lua(f'''
    task("reader"):command(function()
        return true, io.popen("sleep 0.6; echo late"):read("l")
    end):build()
    task("other"):command("sleep 0.6"):build()
    task("stuck"):timeout("1s"):command(function()
        io.popen("echo $$ > {pidfile}; exec sleep 30"):read("a")
    end):build()
    ''')
    assert res["reader"].message == "late" and res["other"].status == "success"
    assert res["stuck"].status == "timeout"
    assert time.monotonic() - started < 3
    assert poll(lambda: gone_or_zombie(int(pidfile.read_text())), 5)


def test_io_popen_under_the_sandbox_needs_fs_and_exec(run_lua, tmp_path):
    source = '''
    task("p"):command(function() return true, io.popen("echo hi"):read("l") end):build()
    '''
    res, _ = run_lua(source, sandbox=True, grants=("exec",))
    assert "io.popen" in res["p"].error and "fs" in res["p"].error
    res, _ = run_lua(source, sandbox=True, grants=("fs", "exec"))
    assert res["p"].status == "success" and res["p"].message == "hi"


# -- http / net -------------------------------------------------------------------------------
@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


def test_http_requests_from_a_task(run_lua, server):
    server.routes["/api"] = json_route({"version": "1.2.3", "healthy": True})
    server.routes["/echo"] = echo
    server.routes["/flaky"] = flaky(2)
    server.routes["/missing"] = lambda r: (404, {}, "nope")
    res, _ = run_lua(f'''
    task("t"):command(function()
        local o = {{}}
        local r = http.get("{server.url('/api')}", {{headers = {{["X-Trace"] = "t1"}}, timeout = 5}})
        o.status, o.ok, o.version = r.status, r.ok, r.json.version
        o.aliases = r.status_code == 200 and r.success
        o.ctype = r.headers["content-type"]
        o.timed = r.duration > 0
        local p = http.post("{server.url('/echo')}", {{json = {{name = "web", replicas = 3}}}})
        o.posted = p.json.body
        o.posted_type = p.json.headers["content-type"]
        local q = http.put("{server.url('/echo')}", {{body = "raw text", query = {{dry = true}}}})
        o.put = q.json.method .. " " .. q.json.path .. " " .. q.json.body
        local g = http.post("{server.url('/echo')}", "go style", {{["X-Go"] = "1"}})
        o.go_style = g.json.body .. " " .. g.json.headers["x-go"]
        local h = http.get("{server.url('/echo')}", {{["X-Headers-Only"] = "yes"}})
        o.headers_only = h.json.headers["x-headers-only"]
        local f = http.get("{server.url('/flaky')}", {{retries = 3, retry_delay = "10ms"}})
        o.retried = f.status .. "/" .. f.attempts
        local m = net.get("{server.url('/missing')}")
        o.missing = m.status .. tostring(m.ok)
        local body, status = net.http_get("{server.url('/api')}")
        o.net_get = status .. " " .. tostring(json.decode(body).healthy)
        local d = http.delete("{server.url('/echo')}")
        o.deleted = d.json.method
        local rq = http.request{{method = "PATCH", url = "{server.url('/echo')}", body = "p"}}
        o.request = rq.json.method .. rq.json.body
        return true, "ok", o
    end):build()
    ''')
    assert res["t"].status == "success", res["t"].error
    o = res["t"].outputs
    assert o["status"] == 200 and o["ok"] is True and o["version"] == "1.2.3"
    assert o["aliases"] is True and o["ctype"] == "application/json" and o["timed"] is True
    assert json.loads(o["posted"]) == {"name": "web", "replicas": 3}
    assert o["posted_type"] == "application/json"
    assert o["put"] == "PUT /echo?dry=true raw text"
    assert o["go_style"] == "go style 1" and o["headers_only"] == "yes"
    assert o["retried"] == "200/3" and o["missing"] == "404false"
    assert o["net_get"] == "200 true" and o["deleted"] == "DELETE" and o["request"] == "PATCHp"
    assert server.requests[0]["headers"]["x-trace"] == "t1"


def test_http_errors_name_the_host_and_hide_secrets(run_lua, server):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server.routes["/private"] = echo
    res, _ = run_lua(f'''
    task("refused"):command(function()
        http.get("http://ops:hunter2pw@127.0.0.1:{port}/hooks/S3CRETPATH?token=tok123")
    end):build()
    task("basic"):command(function()
        return true, http.get("http://ops:hunter2pw@127.0.0.1:{server.port}/private").json.headers.authorization
    end):build()
    task("typo"):command(function() http.get("{server.url('/x')}", {{timeuot = 1}}) end):build()
    ''')
    error = res["refused"].error
    assert f"wf.lua:3: GET 127.0.0.1:{port} failed: connection refused" in error
    for secret in ("hunter2pw", "S3CRETPATH", "tok123", "ops:"):
        assert secret not in error
    assert res["basic"].message == "Basic " + base64.b64encode(b"ops:hunter2pw").decode()
    assert "wf.lua:8: http.get: unknown option 'timeuot'" in res["typo"].error


def test_http_download_to_the_workdir(run_lua, server, tmp_path):
    payload = bytes(range(256)) * 64
    server.routes["/artifact.tgz"] = lambda r: (200, {}, payload)
    server.routes["/gone"] = lambda r: (410, {}, "gone")
    res, _ = run_lua(f'''
    task("t"):workdir({str(tmp_path)!r}):command(function()
        local d = http.download("{server.url('/artifact.tgz')}", "dist/artifact.tgz")
        return true, d.path, {{bytes = d.bytes, status = d.status}}
    end):build()
    task("gone"):workdir({str(tmp_path)!r}):command(function()
        http.download("{server.url('/gone')}", "gone.bin")
    end):build()
    ''')
    assert res["t"].status == "success", res["t"].error
    assert (tmp_path / "dist" / "artifact.tgz").read_bytes() == payload
    assert res["t"].message == str(tmp_path / "dist" / "artifact.tgz")
    assert res["t"].outputs == {"bytes": len(payload), "status": 200}
    assert "wf.lua:7: download from 127.0.0.1" in res["gone"].error
    assert "HTTP 410" in res["gone"].error and not (tmp_path / "gone.bin").exists()


def test_goroutines_make_http_calls_in_parallel(run_lua, server):
    server.routes["/slow"] = slow(0.5)
    res, _ = run_lua(f'''
    task("t"):command(function()
        local statuses = goroutine.map({{1, 2, 3, 4, 5}}, function()
            return http.get("{server.url('/slow')}").status
        end)
        return true, table.concat(statuses, ",")
    end):build()
    ''')
    assert res["t"].message == "200,200,200,200,200"
    assert res["t"].duration_s < 1.5  # five 0.5 s answers, one after another, take 2.5 s


def test_http_under_the_sandbox_needs_net_and_fs_outside_the_workdir(run_lua, server, tmp_path):
    server.routes["/f"] = lambda r: (200, {}, "data")
    inside, outside = tmp_path / "work", tmp_path / "elsewhere"
    inside.mkdir()
    source = f'''
    task("get"):command(function() return true, http.get("{server.url('/f')}").body end):build()
    task("down"):workdir({str(inside)!r}):command(function()
        http.download("{server.url('/f')}", "in.txt")
        http.download("{server.url('/f')}", {str(outside / "out.txt")!r})
    end):build()
    '''
    res, _ = run_lua(source, sandbox=True)
    assert res["get"].error.endswith(f"wf.lua:2: http.get to 127.0.0.1:{server.port} is not "
                                     "allowed in the sandbox (run with --allow net to grant it)")
    res, _ = run_lua(source, sandbox=True, grants=("net",))
    assert res["get"].message == "data" and (inside / "in.txt").read_text() == "data"
    assert "wf.lua:5: http.download to" in res["down"].error and "--allow fs" in res["down"].error
    assert not (outside / "out.txt").exists()


# -- git working copies -----------------------------------------------------------------------
def test_git_clone_returns_a_repository_object(run_lua, tmp_path, monkeypatch):
    for name, value in IDENTITY.items():
        monkeypatch.setenv(name, value)
    src = origin(tmp_path / "origin")
    work = tmp_path / "work"
    work.mkdir()
    res, _ = run_lua(f'''
    task("t"):workdir({str(work)!r}):command(function()
        local o = {{}}
        local repo = git.clone({str(src)!r}, "copy")
        o.path, o.exists = repo.path, repo.exists
        git.checkout(repo, "feature")
        o.feature = fs.exists("copy/feature.txt")
        repo:checkout("main")
        o.branch_after = exec.run("git -C copy rev-parse --abbrev-ref HEAD").stdout
        local again = git.clone{{url = {str(src)!r}, local_path = "copy"}}
        o.again_exists = again.exists
        return true, "ok", o
    end):build()
    task("update"):depends_on("t"):workdir({str(work)!r}):command(function()
        exec.run("cd {src} && echo v9 > app.txt && git commit -qam nine")
        local repo = git.repo("copy")
        repo:pull()
        local dir_form = git.pull("copy")
        fs.write("copy/NEW", "n")
        repo:add("."):commit("add NEW"):tag("v1")
        return true, fs.read("copy/app.txt"), {{status = git.status("copy").clean,
            head = repo:result().head, tostring = tostring(repo), dir_form = dir_form.path}}
    end):build()
    ''')
    assert res["t"].status == "success", res["t"].error
    o = res["t"].outputs
    assert o["path"] == str(work / "copy") and o["exists"] is False
    assert o["feature"] is True and o["branch_after"] == "main\n" and o["again_exists"] is True
    assert res["update"].status == "success", res["update"].error
    assert res["update"].message == "v9\n"
    up = res["update"].outputs
    assert up["status"] is True and up["head"] == sh("rev-parse", "HEAD", cwd=work / "copy").strip()
    assert up["tostring"] == f"git repository {work / 'copy'}" and up["dir_form"] == str(work / "copy")
    assert sh("tag", cwd=work / "copy").split() == ["v1"]


def test_git_errors_and_sandbox(run_lua, tmp_path):
    res, _ = run_lua('''
    task("secret"):command(function()
        git.clone("https://bot:ghp_T0KENVALUE@127.0.0.1:1/o/r.git", "x")
    end):build()
    task("badarg"):command(function() git.checkout(42, "main") end):build()
    ''')
    assert "wf.lua:3: git clone https://127.0.0.1:1/o/r.git failed" in res["secret"].error
    assert "ghp_T0KENVALUE" not in res["secret"].error
    assert res["badarg"].error.endswith("wf.lua:5: git.checkout expects a repository (from "
                                        "git.clone or git.repo) or a directory path, got number")
    res, _ = run_lua('''
    task("net"):command(function() git.clone("https://example.com/o/r.git", "x") end):build()
    ''', sandbox=True, grants=("exec",))
    assert "git.clone from example.com is not allowed in the sandbox (run with --allow net" \
        in res["net"].error


# -- state ------------------------------------------------------------------------------------
def test_state_ttl_exists_compare_swap_and_aliases(run_lua):
    from sloth_runner.store import Store

    res, _ = run_lua('''
    task("t"):command(function()
        local o = {}
        state.set("token", "abc", 3600)
        state.set("opts", "v", {ttl = 60, scrub = false})
        state.set_with_ttl("w", 1, 10)
        o.exists, o.missing = state.exists("token"), state.exists("nope")
        o.ttl = state.get_ttl("token") > 3500 and state.get_ttl("nope") == -2
        o.cas_absent = state.compare_swap("ver", nil, 1)
        o.cas_wrong = state.compare_swap("ver", 5, 6)
        o.cas_right = state.compare_swap("ver", 1, 2)
        o.ver = state.get("ver")
        o.keys = table.concat(state.get_keys("o"), ",")
        o.list = state.list("ver")
        o.dec = state.decrement("ver", 2)
        return true, "ok", o
    end):build()
    task("bad"):command(function() state.set("k", 1, -5) end):build()
    task("badopt"):command(function() state.set("k", 1, {ttl = 5, tll = 1}) end):build()
    ''')
    assert res["t"].status == "success", res["t"].error
    o = res["t"].outputs
    assert o["exists"] is True and o["missing"] is False and o["ttl"] is True
    assert (o["cas_absent"], o["cas_wrong"], o["cas_right"], o["ver"]) == (True, False, True, 2)
    assert o["keys"] == "opts" and o["list"] == {"ver": 2} and o["dec"] == 0
    assert "wf.lua:18: state.set: a TTL is a number of seconds > 0" in res["bad"].error
    assert "wf.lua:19: state.set: unknown option 'tll'" in res["badopt"].error
    rows = dict((r[0], r[1]) for r in Store().query("SELECT key, expires_at FROM state"))
    assert rows["token"] is not None and rows["ver"] is None


def test_with_lock_waits_without_holding_up_other_tasks(run_lua):
    started = time.monotonic()
    res, _ = run_lua('''
    task("a"):command(function()
        return true, state.with_lock("deploy", function()
            state.set("order", (state.get("order") or "") .. "a")
            exec.run("sleep 0.5")
            return "held by a"
        end)
    end):build()
    task("b"):command(function()
        exec.run("sleep 0.1")  -- a holds the lock by now
        state.with_lock("deploy", "holder-b", 30, function()  -- the Go module's argument order
            state.set("order", state.get("order") .. "b")
        end)
    end):build()
    task("c"):command("sleep 0.2"):build()
    task("timeout"):depends_on("c"):command(function()
        state.with_lock("deploy", function() end, 0.05)
    end):build()
    task("raises"):command(function()
        state.with_lock("other", function() error("inside") end)
    end):build()
    task("after"):depends_on("raises"):trigger_rule("all_done"):command(function()
        return true, state.with_lock("other", function() return "free again" end, 1)
    end):build()
    ''')
    assert res["a"].message == "held by a" and res["b"].status == "success"
    assert res["c"].duration_s < 0.45  # c ran while b waited for the lock
    assert "lock 'deploy' is held elsewhere; gave up after 0.05 s" in res["timeout"].error
    assert res["raises"].error.endswith("wf.lua:20: inside")
    assert res["after"].message == "free again"
    assert time.monotonic() - started < 3
    from sloth_runner.store import Store
    from sloth_runner.store.state import StateStore

    assert StateStore(Store()).get("order") == "ab"


def test_with_lock_of_a_lock_already_held_here_is_an_error_not_a_hang(run_lua):
    res, _ = run_lua('''
    task("nested"):command(function()
        return state.with_lock("deploy", function()
            local inner = state.with_lock("deploy", function() return true end)
            return inner
        end)
    end):build()
    task("after"):depends_on("nested"):trigger_rule("all_done"):command(function()
        return true, state.with_lock("deploy", function()
            return state.with_lock("other", function() return "nested, other names: fine" end)
        end, 1)
    end):build()
    task("goroutines"):command(function()  -- another goroutine waits for the lock, as it should
        local g = goroutine.async(function()
            return state.with_lock("shared", function() return "second" end, 5)
        end)
        local first = state.with_lock("shared", function()
            return "first"
        end)
        local ok, second = goroutine.await(g)
        return ok, first .. "," .. tostring(second)
    end):build()
    ''')
    assert res["nested"].status == "failed"
    assert "wf.lua:4: state.with_lock: lock 'deploy' is already held here" in res["nested"].error
    assert res["after"].message == "nested, other names: fine"  # the lock was released
    assert res["goroutines"].message == "first,second", res["goroutines"].error


def test_with_lock_holds_across_concurrent_runs(workflow_file):
    path = workflow_file('''
    task("bump"):command(function()
        for _ = 1, 5 do
            state.with_lock("counter", function()
                local n = state.get("n") or 0     -- read, wait, write: only safe under the lock
                exec.run("true")
                state.set("n", n + 1)
            end)
        end
    end):build()
    ''')
    procs = [subprocess.Popen([sys.executable, "-m", "sloth_runner", "run", "-f", path],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
             for _ in range(4)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    from sloth_runner.store import Store
    from sloth_runner.store.state import StateStore

    assert StateStore(Store()).get("n") == 20


# -- log --------------------------------------------------------------------------------------
def test_log_has_the_go_modules_levels(run_lua):
    _, recorder = run_lua('''
    task("t"):command(function()
        log.success("deployed")
        log.warning("careful")
        log.print("plain", 1)
        print("also plain")
        log.table({replicas = 3}, "config")
        log.table("not a table")
    end):build()
    ''')
    logs = [(level, message) for level, message, task in recorder.logs if task == "t"]
    assert ("success", "deployed") in logs and ("warn", "careful") in logs
    assert ("print", "plain 1") in logs and ("print", "also plain") in logs
    assert ("info", 'config:\n{\n  "replicas": 3\n}') in logs
    assert ("info", "not a table") in logs


# -- start-up cost ----------------------------------------------------------------------------
def test_http_is_imported_only_by_a_workflow_that_uses_it(workflow_file, tmp_path):
    quiet = workflow_file('''
    task("t"):command(function()
        local ch = goroutine.channel(1)
        goroutine.spawn(function() ch:send(state.increment("k")) end)
        log.info(ch:receive())
    end):build()
    ''', "quiet.lua")
    code = ("import sys\nfrom sloth_runner.cli.main import main\n"
            "rc = main(['run', '-f', sys.argv[1], '-o', 'json'])\n"
            "heavy = sorted(m for m in ('urllib.request', 'http.client', 'socket', 'ssl',"
            " 'sloth_runner.services.http', 'subprocess') if m in sys.modules)\n"
            "print('HEAVY', rc, heavy, file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code, quiet], capture_output=True, text=True)
    assert "HEAVY 0 []" in proc.stderr, proc.stderr
    server = Server()
    try:
        server.routes["/"] = lambda r: (200, {}, "ok")
        uses = workflow_file(f'task("t"):command(function() http.get("{server.url("/")}") end)'
                             ':build()', "uses.lua")
        proc = subprocess.run([sys.executable, "-c", code, uses], capture_output=True,
                              text=True)
        assert "'urllib.request'" in proc.stderr and "HEAVY 0" in proc.stderr, proc.stderr
    finally:
        server.stop()


def test_the_cli_runs_a_go_style_workflow(tmp_path, workflow_file):
    """A workflow shaped like the Go project's examples, through the real command."""
    path = workflow_file('''
    local goroutine = require("goroutine")
    workflow.define("parallel", {
        tasks = {
            {name = "fan", command = function()
                local results = goroutine.map({"web-01", "web-02", "web-03"}, function(name)
                    return exec.run("echo deployed " .. name).stdout
                end)
                log.success("all deployed")
                return true, "ok", {count = #results}
            end},
        },
    })
    ''')
    code, doc = cli_json("run", "-f", path)
    assert code == 0, doc
    assert tasks_by_name(doc)["fan"]["outputs"] == {"count": 3}
    assert os.path.exists(path)

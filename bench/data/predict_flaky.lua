-- A pipeline that fails for reasons its history can reveal, run by bench/predict.py through
-- the real CLI to make a history for failure prediction (issue 9):
--   outages of the artifact server, in spells of a few runs (kept in `state` across runs):
--     fetch needs retries, deploy fails 85 %;
--   build fails 80 % with --param target=arm64;
--   deploy fails 60 % with --param region=ap-south;
--   unit is flaky: 20 % whatever the run;
--   and every task fails 3 % of the time for no reason at all.
local function chance(p) return math.random() < p end

task("checkout"):command(function()
    local left = state.get("outage_left", 0)
    if left > 0 then
        state.set("outage_left", left - 1)
        state.set("outage", true)
    elseif chance(0.08) then
        state.set("outage_left", math.random(1, 4))
        state.set("outage", true)
    else
        state.set("outage", false)
    end
    if chance(0.03) then return false, "checkout flake" end
    return true, "checked out"
end):build()

task("fetch"):depends_on({"checkout"}):retries(1):retry_delay(0):command(function()
    if state.get("outage", false) and chance(0.7) then
        return false, "artifact server unreachable"
    end
    if chance(0.03) then return false, "network blip" end
    return true, "fetched"
end):build()

task("build"):depends_on({"fetch"}):command(function(params)
    if params.target == "arm64" and chance(0.8) then return false, "cross-compiler crashed" end
    if chance(0.03) then return false, "compiler flake" end
    return true, "built"
end):build()

task("unit"):depends_on({"build"}):command(function()
    if chance(0.2) then return false, "flaky test" end
    return true, "passed"
end):build()

task("deploy"):depends_on({"build"}):command(function(params)
    if state.get("outage", false) and chance(0.85) then return false, "upload failed" end
    if params.region == "ap-south" and chance(0.6) then return false, "region quota" end
    if chance(0.03) then return false, "deploy flake" end
    return true, "deployed"
end):build()

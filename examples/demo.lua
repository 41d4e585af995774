-- sloth-runner demo: a small release pipeline.
-- Run it with:  sloth-runner run -f examples/demo.lua
--
-- lint and unit_tests run in parallel; package waits for both; a flaky smoke test is retried;
-- the release notes are written by the AI module, offline, on the bundled local model (or on
-- whatever OPENAI_API_KEY / OPENAI_BASE_URL point at), streamed to the terminal as they come,
-- while the AI decision engine picks a rollout strategy (always one of those offered).
-- Afterwards, `sloth-runner history` and `sloth-runner analyze` look back over the runs.

workflow.define("release", {
    description = "lint, test, package and smoke-test a toy service",
    config = {max_parallel_tasks = 4, timeout = "5m"},

    tasks = {
        task("lint")
            :description("static checks")
            :command("sleep 0.3 && echo 'lint: 0 problems'")
            :build(),

        task("unit_tests")
            :description("run the unit tests")
            :command(function(params, deps)
                local r = exec.run("sleep 0.4 && echo '42 passed'")
                return r.success, "unit tests: " .. r.stdout:gsub("%s+$", ""), {passed = 42}
            end)
            :build(),

        task("package")
            :depends_on({"lint", "unit_tests"})
            :command(function(params, deps)
                local version = params.version or "0.1.0"
                local manifest = {name = "toy-service", version = version,
                                  tests_passed = deps.unit_tests.passed}
                log.info("packaging " .. json.encode(manifest))
                return true, "built toy-service " .. version, {manifest = manifest}
            end)
            :build(),

        task("smoke_test")
            :depends_on("package")
            :retries(2, "fixed"):retry_delay("200ms")
            :timeout("10s")
            :command(function(params, deps)
                -- fails on the first attempt to show retries
                local attempt = state.increment("demo.smoke_attempts")
                if attempt % 2 == 1 then
                    return false, "service not ready yet"
                end
                return true, "service answers on :8080"
            end)
            :build(),

        task("release_notes")
            :depends_on({"smoke_test", "package"})
            :timeout("2m")
            :command(function(params, deps)
                local ai = require("ai")
                local runs = state.increment("demo.runs")
                local version = deps.package.manifest.version
                local answer = ai.complete({
                    prompt = "Write one short sentence announcing version " .. version ..
                             " of toy-service, a small web service. All " ..
                             deps.package.manifest.tests_passed .. " tests passed.",
                    max_tokens = 48,
                    temperature = 0,
                    stream = true,
                })
                return true, string.format("demo run #%d, %d tokens in %.0f ms",
                                           runs, answer.usage.total_tokens, answer.latency_ms),
                       {notes = answer.text, model = answer.model}
            end)
            :build(),

        task("rollout_plan")
            :depends_on("smoke_test")
            :timeout("2m")
            :command(function(params, deps)
                local ai = require("ai")
                local plan = ai.decide({
                    situation = "toy-service passed its unit and smoke tests; it serves "
                                .. "internal users only",
                    strategies = {"canary", "blue_green", "rolling"},
                    risk_tolerance = "low",
                })
                log.info(string.format("rollout: %s (confidence %.2f)", plan.strategy,
                                       plan.confidence or 0))
                return true, "rollout strategy: " .. plan.strategy, {strategy = plan.strategy}
            end)
            :build(),
    },
})

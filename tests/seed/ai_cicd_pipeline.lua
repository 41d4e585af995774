-- Complete AI-powered CI/CD workflow
workflow.define("ai_cicd_pipeline", {
    description = "AI-enhanced CI/CD pipeline with smart decisions",
    
    tasks = {
        -- AI code review
        task("ai_code_review")
            :command(function(params, deps)
                local ai = require("ai")
                local git = require("git")
                
                -- Get diff for review
                local diff = git.get_diff("HEAD~1", "HEAD")
                
                -- AI code review
                local review = ai.openai.complete({
                    prompt = "Review this code diff for security issues, bugs, and best practices:\n" .. diff,
                    max_tokens = 400
                })
                
                -- Fail if critical issues found
                if string.find(review.text:lower(), "critical") then
                    return false, "Critical issues found in code review"
                end
                
                return true, "Code review passed", {review = review.text}
            end)
            :build(),
            
        -- Smart test selection
        task("ai_test_selection")
            :depends_on({"ai_code_review"})
            :command(function(params, deps)
                local ai = require("ai")
                
                -- Analyze changed files
                local changed_files = git.get_changed_files()
                
                -- AI decides which tests to run
                local test_plan = ai.decide({
                    changed_files = changed_files,
                    available_tests = {"unit", "integration", "e2e", "performance"},
                    time_budget = "10m"
                })
                
                -- Run selected tests
                for _, test_type in ipairs(test_plan.selected_tests) do
                    exec.run("npm run test:" .. test_type)
                end
                
                return true, "Smart test execution completed"
            end)
            :build(),
            
        -- Intelligent deployment strategy
        task("ai_deployment")
            :depends_on({"ai_test_selection"})
            :command(function(params, deps)
                local ai = require("ai")
                
                -- Deployment decision factors
                local factors = {
                    test_results = deps.ai_test_selection,
                    current_production_health = monitoring.get_health(),
                    deployment_history = state.get("deployment_history"),
                    time_context = {
                        hour = tonumber(os.date("%H")),
                        day_of_week = os.date("%A")
                    }
                }
                
                -- AI deployment strategy
                local strategy = ai.decide({
                    context = factors,
                    strategies = {"blue_green", "canary", "rolling", "immediate"},
                    risk_tolerance = "medium"
                })
                
                log.info("AI selected deployment strategy: " .. strategy.choice)
                log.info("Reasoning: " .. strategy.reasoning)
                
                -- Execute deployment
                return exec.run("deploy.sh --strategy=" .. strategy.choice)
            end)
            :build()
    }
})

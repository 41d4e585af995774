task("smart_deploy")
    :description("AI chooses the best deployment environment")
    :command(function(params, deps)
        local ai = require("ai")
        
        -- Gather deployment context
        local context = {
            time_of_day = os.date("%H"),
            day_of_week = os.date("%w"),
            recent_deployments = state.get("recent_deployments") or {},
            current_load = monitoring.get_load_metrics(),
            test_results = deps.run_tests or {}
        }
        
        -- AI decision making
        local deployment_plan = ai.decide({
            context = context,
            options = {"staging", "production", "canary"},
            criteria = {
                "minimize_risk",
                "optimize_performance", 
                "consider_load"
            }
        })
        
        log.info("AI recommends deployment to: " .. deployment_plan.environment)
        log.info("Reasoning: " .. deployment_plan.reasoning)
        
        -- Execute recommended deployment
        return exec.run("deploy.sh " .. deployment_plan.environment)
    end)
    :build()

-- AI-powered decision making
local decision = ai.decide({
    situation = "Database CPU usage is 85%",
    options = {"scale_up", "optimize_queries", "add_replica"},
    constraints = {
        budget = "limited",
        downtime = "not_allowed"
    },
    history = previous_decisions
})

-- Returns structured decision with reasoning
print(decision.choice)      -- "add_replica"
print(decision.confidence)  -- 0.87
print(decision.reasoning)   -- "Adding replica provides..."

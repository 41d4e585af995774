-- Detect patterns in workflow data
local patterns = ai.analyze_patterns({
    data = workflow_execution_history,
    pattern_types = {"failure_correlation", "performance_trends", "resource_usage"},
    time_window = "30d"
})

for _, pattern in ipairs(patterns) do
    log.info("Detected pattern: " .. pattern.description)
    log.info("Confidence: " .. pattern.confidence)
    log.info("Recommendation: " .. pattern.recommendation)
end

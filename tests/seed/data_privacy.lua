-- Sanitize sensitive data before AI processing
task("ai_log_analysis")
    :command(function(params, deps)
        local ai = require("ai")
        
        -- Remove sensitive information
        local sanitized_logs = ai.sanitize_data(raw_logs, {
            remove_patterns = {
                "password=.*",
                "token=.*",
                "api_key=.*"
            }
        })
        
        local analysis = ai.openai.complete({
            prompt = "Analyze these sanitized logs: " .. sanitized_logs
        })
        
        return true, "Analysis completed safely"
    end)
    :build()

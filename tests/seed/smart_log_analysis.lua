task("analyze_logs")
    :description("AI-powered log analysis for error detection")
    :command(function(params, deps)
        local ai = require("ai")
        
        -- Get recent logs
        local logs = exec.run("tail -100 /var/log/application.log").stdout
        
        -- AI analysis
        local analysis = ai.openai.complete({
            prompt = "Analyze these application logs and identify any errors or issues:\n" .. logs,
            max_tokens = 150
        })
        
        -- Make decisions based on analysis
        local decision = ai.decide({
            analysis = analysis.text,
            threshold = 0.8
        })
        
        if decision.severity == "high" then
            -- Trigger alert workflow
            notifications.send_alert("Critical issue detected: " .. decision.issue)
        end
        
        return true, "Log analysis completed", {
            analysis = analysis.text,
            severity = decision.severity,
            recommendations = decision.actions
        }
    end)
    :build()

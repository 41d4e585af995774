task("ai_infrastructure_optimization")
    :description("AI optimizes infrastructure based on usage patterns")
    :command(function(params, deps)
        local ai = require("ai")
        local aws = require("aws")
        
        -- Gather infrastructure metrics
        local metrics = {
            ec2_utilization = aws.ec2.get_utilization_metrics("7d"),
            rds_performance = aws.rds.get_performance_metrics("7d"),
            costs = aws.billing.get_costs("30d")
        }
        
        -- AI analysis and recommendations
        local optimization = ai.openai.complete({
            prompt = "Analyze these AWS infrastructure metrics and provide optimization recommendations:\n" .. 
                     json.encode(metrics),
            max_tokens = 500
        })
        
        -- Parse recommendations and create action plan
        local recommendations = ai.parse_recommendations(optimization.text)
        
        for _, rec in ipairs(recommendations) do
            if rec.type == "scale_down" and rec.confidence > 0.8 then
                log.info("AI recommends scaling down: " .. rec.resource)
                -- Auto-execute high-confidence recommendations
                aws.ec2.modify_instance(rec.resource, {instance_type = rec.new_size})
            end
        end
        
        return true, "Infrastructure optimization completed", {
            recommendations = recommendations,
            estimated_savings = optimization.estimated_savings
        }
    end)
    :build()

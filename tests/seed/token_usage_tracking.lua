-- Monitor AI API usage
local usage = ai.get_usage_stats()
print("Tokens used today: " .. usage.tokens_today)
print("API calls made: " .. usage.calls_today)
print("Estimated cost: $" .. usage.estimated_cost)

-- AI response time monitoring
local start_time = os.time()
local result = ai.openai.complete("Generate deployment script")
local duration = os.time() - start_time

state.set("ai_response_time", duration)

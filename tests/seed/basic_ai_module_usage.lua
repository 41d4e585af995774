-- Load AI module
local ai = require("ai")

-- Simple text completion
local response = ai.openai.complete({
    prompt = "Generate a bash script to deploy a Node.js application",
    max_tokens = 200,
    temperature = 0.7
})

log.info("Generated script: " .. response.text)

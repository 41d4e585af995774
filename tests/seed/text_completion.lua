local ai = require("ai")

-- Basic completion
local result = ai.openai.complete("Explain CI/CD best practices")

-- Advanced completion with parameters
local result = ai.openai.complete({
    prompt = "Write a deployment script",
    max_tokens = 500,
    temperature = 0.5,
    top_p = 0.9,
    frequency_penalty = 0.1,
    presence_penalty = 0.1
})

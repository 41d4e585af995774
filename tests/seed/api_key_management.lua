-- Secure API key handling
local ai = require("ai")

-- Load from environment (recommended)
ai.configure({
    api_key = os.getenv("OPENAI_API_KEY"),
    timeout = 30,
    retry_attempts = 3
})

-- Or from encrypted configuration
ai.configure({
    config_file = "encrypted-ai-config.yaml",
    encryption_key = os.getenv("CONFIG_ENCRYPTION_KEY")
})

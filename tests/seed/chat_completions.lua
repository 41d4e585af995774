-- Multi-turn conversation
local chat_result = ai.openai.chat({
    messages = {
        {role = "system", content = "You are a DevOps expert"},
        {role = "user", content = "How do I optimize my Docker builds?"}
    },
    model = "gpt-4",
    max_tokens = 300
})

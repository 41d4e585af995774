-- Use organization-specific fine-tuned models
ai.configure({
    provider = "openai",
    model = "ft:gpt-3.5-turbo:company:devops-model:abc123"
})

-- Use local AI models for sensitive data
ai.configure({
    provider = "local",
    model_path = "/models/custom-code-model",
    device = "gpu"  -- or "cpu"
})

local result = ai["local"].complete("Generate Kubernetes deployment")

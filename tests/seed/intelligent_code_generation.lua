task("generate_dockerfile")
    :description("AI-generated Dockerfile for the application")
    :command(function(params, deps)
        local ai = require("ai")
        
        -- Analyze project structure
        local project_files = exec.run("find . -type f -name '*.js' -o -name '*.py' -o -name '*.go'").stdout
        
        -- Generate appropriate Dockerfile
        local dockerfile_content = ai.openai.complete({
            prompt = "Create a Dockerfile for this project with files: " .. project_files,
            max_tokens = 300,
            temperature = 0.3  -- Lower temperature for more deterministic code
        })
        
        -- Write generated Dockerfile
        local file = io.open("Dockerfile", "w")
        file:write(dockerfile_content.text)
        file:close()
        
        return true, "Dockerfile generated successfully", {
            dockerfile_size = #dockerfile_content.text,
            ai_confidence = dockerfile_content.confidence
        }
    end)
    :build()

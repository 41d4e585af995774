-- Specialized code generation
local code = ai.openai.generate_code({
    language = "bash",
    description = "Script to backup PostgreSQL database",
    parameters = {
        database_name = "myapp_db",
        backup_location = "/backups/"
    }
})

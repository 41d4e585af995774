"""The AI service: completion, chat and code generation over pluggable providers.

Plain Python, usable without Lua (`AIService`). Importing this package is cheap: the OpenAI SDK,
llama.cpp, tiktoken and cryptography are imported by the first call that needs them.
"""

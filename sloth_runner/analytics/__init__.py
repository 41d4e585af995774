"""Analytics over the recorded execution history: statistics, never generated text.

Plain Python over `store` rows, usable from the CLI (`sloth-runner analyze`), from Lua
(`ai.analyze_patterns`) and on its own; it imports nothing heavy.
"""

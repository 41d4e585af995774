"""The Lua layer: a lupa (Lua 5.4) runtime, the DSL, the loader and thin module adapters.

It turns a workflow file into engine objects and adapts Lua calls onto plain Python services.
"""

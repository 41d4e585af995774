"""The engine: tasks, DAG validation, scheduling, retries and timeouts.

It knows nothing of Lua. A task's action is any callable taking a `TaskContext`; it returns an
`Outcome`, or a generator that yields `Blocking`/`Sleep` requests back to the scheduler and
finally returns an `Outcome`. That one seam lets Lua coroutines, shell commands and plain Python
functions run side by side, and lets tests drive the engine without Lua.
"""

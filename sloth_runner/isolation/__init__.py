"""Task attempts in worker processes: the wire format, process trees, the zygote and the pool.

Why processes: one Lua state cannot guarantee a timeout. Inside one long C call (a backtracking
`string.find`, `table.move` over billions of slots) no hook runs, and every other task stalls
with it. A worker that overruns is simply killed, with everything it started.
"""

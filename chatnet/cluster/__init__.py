"""
Cluster mode's groundwork: the shared state of several chatnet nodes in
Redis (see docs/cluster.rst).  Not yet wired into the server.

Pure modules: :mod:`.keys` (key and channel names, script replies parsed),
:mod:`.scripts` (the Lua), :mod:`.sequence` (per-room order and gaps),
:mod:`.timing` (lease renewal and reconnection backoff).  Thin Redis I/O:
:mod:`.redis` (the typed txredisapi wrapper), :mod:`.state` (nodes, names,
rooms) and :mod:`.messages` (sequenced publish and the gap-filling
subscriber).

Pure: imports nothing from Twisted.
"""

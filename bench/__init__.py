"""
chatnet's benchmark suite (issue 5): ``python -m bench --help``.

A compiled load generator (``loadgen.c``, epoll, one process) drives a chatnet
server started from this checkout, and ngircd when it is installed, over
loopback; :mod:`bench.report` turns the figures into a table, ratios and the
issue's targets.
"""

"""
The chatnet terminal client.

:mod:`chatnet.client.core` speaks the protocol and knows nothing of
terminals; :mod:`chatnet.client.lines` (line mode) and
:mod:`chatnet.client.fullscreen` (full screen) are its two front ends, started by
:func:`chatnet.client.terminal.main`.
"""

__all__: list[str] = []

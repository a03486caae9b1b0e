"""
The Lua scripts of the cluster-wide upload slots and their fair queue (the
functions they share, and the key layout, are :mod:`.slot_lua`'s).

Like every script of :mod:`.scripts`: ARGV[1] is the key prefix; a script
that acts for a node takes its id and incarnation next and answers
``{"fenced"}``, changing nothing, unless that incarnation is live.  Every
script that may free or fill a slot gives the free slots to waiting uploads
before it ends (``up_dispatch``), so that a free slot is never left while a
waiting upload not held could take it.  Such a script answers
``{status, {granted ids}, running, queued, ...}``: the uploads of the
calling node that it gave a slot (other nodes hear of theirs on their
channel), and the cluster's figures after it.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatnet.cluster import keys
from chatnet.cluster.keys import ClusterError
from chatnet.cluster.scripts import Script

_FIGURES = r"""
local function figures(status, mine, ...)
  return {status, mine, redis.call('SCARD', up('running')), redis.call('SCARD', up('queued')), ...}
end
"""

#: ARGV: P, node, inc, limit, queue, per_user, id, sender, to, held ->
#: {"started", grants, running, queued, free} |
#: {"queued", grants, running, queued, free, position} |
#: {"user-full", grants, running, queued, mine} | {"queue-full", grants, running, queued} |
#: {"fenced"}.  ``free``: slots free (when queued all the same: it was held).
ENQUEUE = Script("upload-enqueue", _FIGURES + r"""
local node, inc, limit = ARGV[2], ARGV[3], tonumber(ARGV[4])
local queue, per_user = tonumber(ARGV[5]), tonumber(ARGV[6])
local id, s, to, held = ARGV[7], ARGV[8], ARGV[9], ARGV[10]
if not live(node, inc) then return {'fenced'} end
redis.call('SET', up('limit'), limit)
local mine = up_dispatch(node)
local tk = up('t', id)
if redis.call('EXISTS', tk) == 1 then return {'exists'} end
local free = limit - redis.call('SCARD', up('running'))
if held == '0' and free > 0 then
  redis.call('HSET', tk, 'sender', s, 'node', node, 'inc', inc, 'to', to, 'held', held,
             'state', 'running')
  redis.call('SADD', up('running'), id)
  redis.call('SADD', key('node', node, 'uploads'), id)
  return figures('started', mine, free - 1)
end
local waiting = redis.call('LLEN', up('queue', s))
if waiting >= per_user then return figures('user-full', mine, waiting) end
if redis.call('SCARD', up('queued')) >= queue then return figures('queue-full', mine) end
redis.call('HSET', tk, 'sender', s, 'node', node, 'inc', inc, 'to', to, 'held', held,
           'state', 'queued')
up_queue(s, id, false)
redis.call('SADD', key('node', node, 'uploads'), id)
if free < 0 then free = 0 end
return figures('queued', mine, free, up_position(s, id))
""")

#: ARGV: P, node, inc, n, id (n times), then id, held pairs ->
#: {"ok", grants, running, queued} | {"fenced"}: the node's uploads ``id``
#: are done, failed or cancelled (their slots or places are free; unknown
#: ids are no error: a repetition), and its waiting uploads are held ("1":
#: their addressee's spool is full) or not ("0"), in one step, so that a
#: slot freed with spool room goes to the upload the room was freed for.
RELEASE = Script("upload-release", _FIGURES + r"""
local node, inc, n = ARGV[2], ARGV[3], tonumber(ARGV[4])
if not live(node, inc) then return {'fenced'} end
for i = 5, 4 + n do
  if redis.call('HGET', up('t', ARGV[i]), 'node') == node then up_drop(ARGV[i]) end
end
for i = 5 + n, #ARGV - 1, 2 do
  local tk = up('t', ARGV[i])
  local t = redis.call('HMGET', tk, 'node', 'state')
  if t[1] == node and t[2] == 'queued' then redis.call('HSET', tk, 'held', ARGV[i + 1]) end
end
return figures('ok', up_dispatch(node))
""")

#: ARGV: P, node, inc, id -> {"ok", grants, running, queued} | {"fenced"}: the
#: node cannot start ``id``, given a slot (its addressee's spool filled
#: meanwhile): the slot goes back, and ``id`` waits again, held, first of
#: its sender's.
GIVE_BACK = Script("upload-give-back", _FIGURES + r"""
local node, inc, id = ARGV[2], ARGV[3], ARGV[4]
if not live(node, inc) then return {'fenced'} end
local tk = up('t', id)
local t = redis.call('HMGET', tk, 'node', 'state', 'sender')
if t[1] == node and t[2] == 'running' then
  redis.call('SREM', up('running'), id)
  redis.call('HSET', tk, 'state', 'queued', 'held', '1')
  up_queue(t[3], id, true)
end
return figures('ok', up_dispatch(node))
""")

#: ARGV: P, node, inc, limit, high -> {"ok", grants, running, queued, id, state, ...} |
#: {"fenced"}: every upload of the node, after forgetting those of its
#: earlier incarnations; what the node compares with what it knows.
#: ``high``: the highest transfer number the node was given; the counter
#: is raised to it if Redis lost it (a restart), so no number comes twice.
SYNC = Script("upload-sync", _FIGURES + r"""
local node, inc = ARGV[2], ARGV[3]
if not live(node, inc) then return {'fenced'} end
redis.call('SET', up('limit'), ARGV[4])
if tonumber(redis.call('GET', up('ids')) or '0') < tonumber(ARGV[5]) then
  redis.call('SET', up('ids'), ARGV[5])
end
reap_uploads(node, inc)
local mine = up_dispatch(node)
local out = figures('ok', mine)
for _, id in ipairs(redis.call('SMEMBERS', key('node', node, 'uploads'))) do
  table.insert(out, id)
  table.insert(out, redis.call('HGET', up('t', id), 'state') or '')
end
return out
""")

#: ARGV: P, node, inc, limit, then id, sender, to, state, held for each upload
#: -> {"ok", grants, running, queued} | {"fenced"}: the node's uploads that
#: Redis does not hold (it lost them, or they were of the node's earlier
#: incarnation), held again: running ones keep their slot (for a while
#: there may be more running than slots), waiting ones queue again, in the
#: order given.
REASSERT = Script("upload-reassert", _FIGURES + r"""
local node, inc = ARGV[2], ARGV[3]
if not live(node, inc) then return {'fenced'} end
redis.call('SET', up('limit'), ARGV[4])
for i = 5, #ARGV - 4, 5 do
  local id, s, state = ARGV[i], ARGV[i + 1], ARGV[i + 3]
  local tk = up('t', id)
  if redis.call('EXISTS', tk) == 0 then
    redis.call('HSET', tk, 'sender', s, 'node', node, 'inc', inc, 'to', ARGV[i + 2],
               'held', ARGV[i + 4], 'state', state)
    if state == 'running' then
      redis.call('SADD', up('running'), id)
    else
      up_queue(s, id, false)
    end
    redis.call('SADD', key('node', node, 'uploads'), id)
  end
end
return figures('ok', up_dispatch(node))
""")

#: ARGV: P, id -> {"queued", position} | {"running"} | {"unknown"}
POSITION = Script("upload-position", r"""
local id = ARGV[2]
local t = redis.call('HMGET', up('t', id), 'sender', 'state')
if not t[1] then return {'unknown'} end
if t[2] ~= 'queued' then return {'running'} end
return {'queued', up_position(t[1], id)}
""")

ALL = (ENQUEUE, RELEASE, GIVE_BACK, SYNC, REASSERT, POSITION)


@dataclass(frozen=True)
class Answer:
    """A slot script's answer: ``{status, grants, running, queued, ...}``."""

    status: str
    #: The calling node's uploads the script gave a slot.
    grants: tuple[int, ...]
    #: Uploads holding a slot, and waiting, in the cluster, after the script.
    running: int
    queued: int
    #: What follows, by script.
    rest: tuple[object, ...]

    def number(self, i: int) -> int:
        """The ``i``-th value after the figures, as an integer."""
        if i >= len(self.rest):
            raise ClusterError(f"short {self.status!r} answer: {self.rest!r}")
        return keys.integer(self.rest[i])


def answer(reply: object) -> Answer:
    """
    A slot script's reply read.

    :raises Fenced: the node's incarnation is no longer live.
    :raises ClusterError: a reply no script gives.
    """
    head, rest = keys.status(reply)
    if len(rest) < 3 or not isinstance(rest[0], list):
        raise ClusterError(f"unexpected upload slots reply {reply!r}")
    grants = tuple(keys.integer(g) for g in rest[0])
    return Answer(head, grants, keys.integer(rest[1]), keys.integer(rest[2]), tuple(rest[3:]))


def states(values: tuple[object, ...]) -> dict[int, str]:
    """``SYNC``'s flat ``id, state`` pairs: state by transfer number."""
    if len(values) % 2:
        raise ClusterError(f"odd upload list {values!r}")
    names = keys.names(values)
    return {keys.integer(names[i]): names[i + 1] for i in range(0, len(names), 2)}

"""
The Lua functions of the cluster-wide upload slots and their fair queue,
part of every script's prelude (:mod:`.scripts` includes them, so that the
reaping of a dead node, ``reap()`` there, frees its uploads in the same
step); the scripts that use them are :mod:`.slot_scripts`.

Keys (``P`` the prefix)::

    P:up:limit                 string: slots in the cluster (the last node's --upload-slots)
    P:up:ids                   counter: transfer numbers, taken in blocks (INCRBY)
    P:up:turn                  counter: the ring's next turn
    P:up:ring                  zset: senders (folded) with waiting uploads, by turn
    P:up:queue:<sender>        list: the sender's waiting uploads, in acceptance order
    P:up:queued                set: every waiting upload
    P:up:running               set: every upload holding a slot
    P:up:t:<id>                hash: sender, node, inc, to, held ("0"/"1"), state
    P:node:<id>:uploads        set: the node's uploads, waiting or running
    channel P:chan:uploads:<id>  pub/sub: "<transfer>": it holds a slot now

The order is :class:`chatnet.fairqueue.FairQueue`'s: senders take turns in
a ring (a sender joins at its end with its first waiting upload, and moves
to the end when one of its uploads starts); within a sender, acceptance
order; uploads *held* by their node (their addressee's spool is full) keep
their place and pass their turn.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

#: Needs ``key()`` (the prelude's); defines ``up_*`` and ``reap_uploads``.
UPLOADS = r"""
local function up(...) return key('up', ...) end
-- Takes upload id out of its sender's queue (the sender leaves the ring
-- when it has none left).
local function up_unqueue(s, id)
  local qk = up('queue', s)
  redis.call('LREM', qk, 1, id)
  redis.call('SREM', up('queued'), id)
  if redis.call('LLEN', qk) == 0 then redis.call('ZREM', up('ring'), s) end
end
-- Puts upload id at the end (or, first, the head) of its sender's queue;
-- a sender not in the ring joins it at its end.
local function up_queue(s, id, first)
  if first then
    redis.call('LPUSH', up('queue', s), id)
  else
    redis.call('RPUSH', up('queue', s), id)
  end
  redis.call('SADD', up('queued'), id)
  if not redis.call('ZSCORE', up('ring'), s) then
    redis.call('ZADD', up('ring'), redis.call('INCR', up('turn')), s)
  end
end
-- Forgets upload id, freeing its place or its slot.  Returns whether it was there.
local function up_drop(id)
  local tk = up('t', id)
  local t = redis.call('HMGET', tk, 'sender', 'node', 'state')
  if not t[1] then return false end
  if t[3] == 'queued' then
    up_unqueue(t[1], id)
  else
    redis.call('SREM', up('running'), id)
  end
  redis.call('SREM', key('node', t[2], 'uploads'), id)
  redis.call('DEL', tk)
  return true
end
-- Uploads waiting ahead of id (of sender s) in turn order: in each earlier
-- round, one of every sender that has that many; in its own round, one of
-- every sender ahead of s in the ring.
local function up_position(s, id)
  local depth = 0
  for i, v in ipairs(redis.call('LRANGE', up('queue', s), 0, -1)) do
    if v == id then depth = i - 1 break end
  end
  local ahead, before = 0, true
  for _, o in ipairs(redis.call('ZRANGE', up('ring'), 0, -1)) do
    if o == s then
      before = false
      ahead = ahead + depth
    else
      local n = redis.call('LLEN', up('queue', o))
      local d = depth
      if before then d = depth + 1 end
      ahead = ahead + math.min(n, d)
    end
  end
  return ahead
end
-- Gives free slots to waiting uploads not held, in turn; the sender of
-- each moves to the end of the ring.  Each node hears of its own on its
-- channel, except node me, whose are returned (a list of ids).
local function up_dispatch(me)
  local limit = tonumber(redis.call('GET', up('limit')) or '0')
  local mine = {}
  while redis.call('SCARD', up('running')) < limit do
    local pick, owner = nil, nil
    for _, s in ipairs(redis.call('ZRANGE', up('ring'), 0, -1)) do
      for _, id in ipairs(redis.call('LRANGE', up('queue', s), 0, -1)) do
        if redis.call('HGET', up('t', id), 'held') == '0' then
          pick = id
          break
        end
      end
      if pick then
        owner = s
        break
      end
    end
    if not pick then break end
    up_unqueue(owner, pick)
    if redis.call('LLEN', up('queue', owner)) > 0 then
      redis.call('ZADD', up('ring'), redis.call('INCR', up('turn')), owner)
    end
    redis.call('SADD', up('running'), pick)
    redis.call('HSET', up('t', pick), 'state', 'running')
    local node = redis.call('HGET', up('t', pick), 'node')
    if node == me then
      table.insert(mine, pick)
    else
      redis.call('PUBLISH', key('chan', 'uploads', node), pick)
    end
  end
  return mine
end
-- The uploads of node that are not of its live incarnation current (all
-- of them when it has none) are forgotten, their slots given to others.
local function reap_uploads(node, current)
  local nk = key('node', node, 'uploads')
  local gone = false
  for _, id in ipairs(redis.call('SMEMBERS', nk)) do
    if not current or redis.call('HGET', up('t', id), 'inc') ~= current then
      up_drop(id)
      redis.call('SREM', nk, id)
      gone = true
    end
  end
  if gone then up_dispatch('') end
end
"""

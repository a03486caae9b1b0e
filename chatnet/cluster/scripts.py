"""
The Lua scripts that change the cluster state, each one atomic in Redis.

Every script that acts for a node takes the node's id and incarnation and
first checks that ``P:node:<id>:lease`` still holds that incarnation
(fencing): a node whose lease ran out, presumed dead, can do nothing with
its old incarnation, however late its request arrives.  It answers
``{"fenced"}`` and changes nothing.

ARGV[1] is always the key prefix; the scripts build the key names of
:mod:`.keys` themselves, which is fine on one Redis (or a Sentinel-managed
primary) but not on Redis Cluster (docs/cluster.rst says so).  Replies are
tables whose first element is a status string, except the pages.

Pure: imports nothing from Twisted.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

_PRELUDE = r"""
local P = ARGV[1]
local function key(...) return P .. ':' .. table.concat({...}, ':') end
local function live(node, inc)
  return redis.call('GET', key('node', node, 'lease')) == inc
end
local function owns(u, node, inc)
  local h = redis.call('HMGET', key('user', u), 'node', 'inc')
  return h[1] == node and h[2] == inc
end
local function spellings(folded)
  local out = {}
  for i, u in ipairs(folded) do
    out[i] = redis.call('HGET', key('user', u), 'name') or u
  end
  return out
end
-- Takes user u out of its room; the room goes when empty.  Returns the
-- room's spelling, or false when u was in no room.
local function leave_room(u)
  local uk = key('user', u)
  local r = redis.call('HGET', uk, 'room')
  if not r then return false end
  redis.call('HDEL', uk, 'room')
  local rk = key('room', r)
  local mk = key('room', r, 'members')
  local name = redis.call('HGET', rk, 'name') or r
  redis.call('ZREM', mk, u)
  if redis.call('ZCARD', mk) == 0 then
    redis.call('DEL', rk, mk, key('room', r, 'epoch'), key('room', r, 'offset'),
               key('room', r, 'stream'))
    redis.call('ZREM', key('rooms'), r)
  end
  return name
end
-- Takes user u out entirely; returns its spelling and its room's (or '').
local function drop_user(u, node)
  local name = redis.call('HGET', key('user', u), 'name') or u
  local left = leave_room(u) or ''
  redis.call('DEL', key('user', u))
  redis.call('ZREM', key('users'), u)
  redis.call('SREM', key('node', node, 'users'), u)
  return name, left
end
-- Takes out the users of node that are not of its live incarnation
-- (all of them when it has none); forgets the node when it is dead and
-- empty.  Returns flat user, room pairs.
local function reap(node)
  local current = redis.call('GET', key('node', node, 'lease'))
  local out = {}
  for _, u in ipairs(redis.call('SMEMBERS', key('node', node, 'users'))) do
    if not current or redis.call('HGET', key('user', u), 'inc') ~= current then
      local name, left = drop_user(u, node)
      table.insert(out, name)
      table.insert(out, left)
    end
  end
  if not current and redis.call('SCARD', key('node', node, 'users')) == 0 then
    redis.call('SREM', key('nodes'), node)
  end
  return out
end
local function page(zkey, after, limit)
  local low = '-'
  if after ~= '' then low = '(' .. after end
  local got = redis.call('ZRANGEBYLEX', zkey, low, '+', 'LIMIT', 0, limit + 1)
  local more = 0
  if #got > limit then
    more = 1
    table.remove(got)
  end
  return got, more
end
"""


@dataclass(frozen=True)
class Script:
    """One Lua script: its name (for messages) and its text, prelude included."""

    name: str
    body: str
    source: str = field(init=False)
    sha1: str = field(init=False)

    def __post_init__(self) -> None:
        source = _PRELUDE + self.body
        object.__setattr__(self, "source", source)
        object.__setattr__(self, "sha1", hashlib.sha1(source.encode()).hexdigest())


#: ARGV: P, node, lease_ms -> {"ok", incarnation} | {"in-use"}
REGISTER = Script("register", r"""
local node, ms = ARGV[2], ARGV[3]
local lk = key('node', node, 'lease')
if redis.call('EXISTS', lk) == 1 then return {'in-use'} end
local inc = redis.call('INCR', key('node', node, 'incarnation'))
redis.call('SET', lk, inc, 'PX', ms)
redis.call('SADD', key('nodes'), node)
return {'ok', inc}
""")

#: ARGV: P, node, inc, lease_ms -> {"ok"} | {"fenced"}.  Never brings a
#: lease back once it has run out.
RENEW = Script("renew", r"""
local node, inc, ms = ARGV[2], ARGV[3], ARGV[4]
if not live(node, inc) then return {'fenced'} end
redis.call('PEXPIRE', key('node', node, 'lease'), ms)
return {'ok'}
""")

#: ARGV: P, node, inc -> {"ok", user, room, ...} | {"fenced"}: a clean stop
#: that releases all the node's users and rooms at once.
DEREGISTER = Script("deregister", r"""
local node, inc = ARGV[2], ARGV[3]
if not live(node, inc) then return {'fenced'} end
redis.call('DEL', key('node', node, 'lease'))
local out = reap(node)
table.insert(out, 1, 'ok')
return out
""")

#: ARGV: P, node -> {user, room, ...}: the users of ``node`` that are not of
#: its live incarnation (all when it is dead), taken out.
REAP = Script("reap", r"""
return reap(ARGV[2])
""")

#: ARGV: P -> {node, ...}: registered nodes whose lease has run out.
DEAD_NODES = Script("dead-nodes", r"""
local out = {}
for _, node in ipairs(redis.call('SMEMBERS', key('nodes'))) do
  if redis.call('EXISTS', key('node', node, 'lease')) == 0 then
    table.insert(out, node)
  end
end
table.sort(out)
return out
""")

#: ARGV: P, node, inc, user (folded), name -> {"ok"} | {"taken"} | {"fenced"}
CLAIM = Script("claim", r"""
local node, inc, u, name = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not live(node, inc) then return {'fenced'} end
local uk = key('user', u)
if redis.call('EXISTS', uk) == 1 then return {'taken'} end
redis.call('HSET', uk, 'name', name, 'node', node, 'inc', inc)
redis.call('ZADD', key('users'), 0, u)
redis.call('SADD', key('node', node, 'users'), u)
return {'ok'}
""")

#: ARGV: P, node, inc, user -> {"ok", room or ""} | {"not-owner"} | {"fenced"}
RELEASE = Script("release", r"""
local node, inc, u = ARGV[2], ARGV[3], ARGV[4]
if not live(node, inc) then return {'fenced'} end
if not owns(u, node, inc) then return {'not-owner'} end
local _, left = drop_user(u, node)
return {'ok', left}
""")

#: ARGV: P, node, inc, user, room (folded), room spelling, capacity ->
#: {"ok"|"same", room, left or "", member, ...} | {"room-full"} |
#: {"not-owner"} | {"fenced"}.  Leaving the previous room is the same step.
JOIN = Script("join", r"""
local node, inc, u, r, spelling = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local capacity = tonumber(ARGV[7])
if not live(node, inc) then return {'fenced'} end
if not owns(u, node, inc) then return {'not-owner'} end
local uk = key('user', u)
local rk = key('room', r)
local mk = key('room', r, 'members')
local status, left = 'same', ''
if redis.call('HGET', uk, 'room') ~= r then
  if redis.call('ZCARD', mk) >= capacity then return {'room-full'} end
  left = leave_room(u) or ''
  if redis.call('EXISTS', rk) == 0 then
    redis.call('HSET', rk, 'name', spelling)
    redis.call('ZADD', key('rooms'), 0, r)
  end
  redis.call('ZADD', mk, 0, u)
  redis.call('HSET', uk, 'room', r)
  status = 'ok'
end
local out = {status, redis.call('HGET', rk, 'name'), left}
for _, name in ipairs(spellings(redis.call('ZRANGE', mk, 0, -1))) do
  table.insert(out, name)
end
return out
""")

#: ARGV: P, node, inc, user -> {"ok", room} | {"not-in-room"} |
#: {"not-owner"} | {"fenced"}
LEAVE = Script("leave", r"""
local node, inc, u = ARGV[2], ARGV[3], ARGV[4]
if not live(node, inc) then return {'fenced'} end
if not owns(u, node, inc) then return {'not-owner'} end
local left = leave_room(u)
if not left then return {'not-in-room'} end
return {'ok', left}
""")

#: ARGV: P, room (folded) -> {"ok", room, member, ...} | {"no-such-room"}
MEMBERS = Script("members", r"""
local r = ARGV[2]
local name = redis.call('HGET', key('room', r), 'name')
if not name then return {'no-such-room'} end
local out = {'ok', name}
for _, m in ipairs(spellings(redis.call('ZRANGE', key('room', r, 'members'), 0, -1))) do
  table.insert(out, m)
end
return out
""")

#: ARGV: P, after (folded, "" for the start), limit -> {more, name, ...}
USERS = Script("users", r"""
local got, more = page(key('users'), ARGV[2], tonumber(ARGV[3]))
local out = spellings(got)
table.insert(out, 1, more)
return out
""")

#: ARGV: P, after, limit -> {more, {room, member, ...}, ...}
ROOMS = Script("rooms", r"""
local got, more = page(key('rooms'), ARGV[2], tonumber(ARGV[3]))
local out = {more}
for _, r in ipairs(got) do
  local entry = {redis.call('HGET', key('room', r), 'name') or r}
  for _, m in ipairs(spellings(redis.call('ZRANGE', key('room', r, 'members'), 0, -1))) do
    table.insert(entry, m)
  end
  table.insert(out, entry)
end
return out
""")

#: ARGV: P, node, inc, room (folded), payload, maxlen, new epoch ->
#: {"ok", epoch, offset} | {"fenced"}.  The Centrifuge way: the offset is
#: INCR'd, the payload goes into the capped stream under id <offset>-0 and
#: is PUBLISHed as "<epoch>:<offset>:<payload>", all in one step.
PUBLISH = Script("publish", r"""
local node, inc, r, payload = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local maxlen, fresh = ARGV[6], ARGV[7]
if not live(node, inc) then return {'fenced'} end
local ek = key('room', r, 'epoch')
local epoch = redis.call('GET', ek)
if not epoch then
  epoch = fresh
  redis.call('SET', ek, epoch)
end
local offset = redis.call('INCR', key('room', r, 'offset'))
redis.call('XADD', key('room', r, 'stream'), 'MAXLEN', '~', maxlen, offset .. '-0', 'd', payload)
redis.call('PUBLISH', key('chan', 'room', r), epoch .. ':' .. offset .. ':' .. payload)
return {'ok', epoch, offset}
""")

#: ARGV: P, room (folded) -> {epoch or "", offset}: where the room's sequence is.
POSITION = Script("position", r"""
local r = ARGV[2]
local epoch = redis.call('GET', key('room', r, 'epoch')) or ''
local offset = tonumber(redis.call('GET', key('room', r, 'offset')) or '0')
return {epoch, offset}
""")

ALL = (REGISTER, RENEW, DEREGISTER, REAP, DEAD_NODES, CLAIM, RELEASE, JOIN, LEAVE,
       MEMBERS, USERS, ROOMS, PUBLISH, POSITION)

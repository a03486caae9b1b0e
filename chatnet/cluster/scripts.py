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

from chatnet.cluster.slot_lua import UPLOADS

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
-- Appends payload to room r's sequence (the Centrifuge way): the next
-- offset (INCR), kept in the capped stream under id <offset>-0 and PUBLISHed
-- as "<epoch>:<offset>:<payload>".  A room without an epoch starts one
-- (fresh).  Pseudo-rooms '~<node>' (a node's inbox) and '~all' (cluster
-- events) are sequenced the same way.  Returns epoch, offset.
local function pub(r, payload, maxlen, fresh)
  local ek = key('room', r, 'epoch')
  local epoch = redis.call('GET', ek)
  if not epoch then
    epoch = fresh
    redis.call('SET', ek, epoch)
  end
  local offset = redis.call('INCR', key('room', r, 'offset'))
  redis.call('XADD', key('room', r, 'stream'), 'MAXLEN', '~', maxlen, offset .. '-0', 'd', payload)
  redis.call('PUBLISH', key('chan', 'room', r), epoch .. ':' .. offset .. ':' .. payload)
  return epoch, offset
end
-- A presence event in room r about user u, for every member but u: the
-- payload of a room is "<excluded user>\n<frame JSON>".
local function presence(r, u, event, maxlen, fresh)
  local name = redis.call('HGET', key('room', r), 'name') or r
  local uname = redis.call('HGET', key('user', u), 'name') or u
  return pub(r, u .. '\n' .. cjson.encode({type = 'presence', room = name, user = uname,
                                           event = event}), maxlen, fresh)
end
-- Takes user u out of its room; the room goes when empty, and otherwise
-- hears event (unless event is '').  Returns the room's spelling and its
-- members after, or false when u was in no room.
local function leave_room(u, event, maxlen, fresh)
  local uk = key('user', u)
  local r = redis.call('HGET', uk, 'room')
  if not r then return false, 0 end
  local rk = key('room', r)
  local mk = key('room', r, 'members')
  local name = redis.call('HGET', rk, 'name') or r
  if event ~= '' and redis.call('ZCARD', mk) > 1 then
    presence(r, u, event, maxlen, fresh)
  end
  redis.call('HDEL', uk, 'room')
  redis.call('ZREM', mk, u)
  local left = redis.call('ZCARD', mk)
  if left == 0 then
    redis.call('DEL', rk, mk, key('room', r, 'epoch'), key('room', r, 'offset'),
               key('room', r, 'stream'))
    redis.call('ZREM', key('rooms'), r)
  end
  return name, left
end
-- Takes user u out entirely, telling its room event and every node that
-- the name is free ('gone' on '~all'); returns its spelling and its room's
-- (or '').
local function drop_user(u, node, event, maxlen, fresh)
  local name = redis.call('HGET', key('user', u), 'name') or u
  local left = leave_room(u, event, maxlen, fresh) or ''
  redis.call('DEL', key('user', u))
  redis.call('ZREM', key('users'), u)
  redis.call('SREM', key('node', node, 'users'), u)
  pub('~all', 'gone\n' .. u .. '\n' .. node, maxlen, fresh)
  return name, left
end
""" + UPLOADS + r"""
-- Takes out the users of node that are not of its live incarnation
-- (all of them when it has none), their rooms hearing 'disconnect'; forgets
-- the node when it is dead and empty.  Returns flat user, room pairs.
local function reap(node, maxlen, fresh)
  local current = redis.call('GET', key('node', node, 'lease'))
  local out = {}
  for _, u in ipairs(redis.call('SMEMBERS', key('node', node, 'users'))) do
    if not current or redis.call('HGET', key('user', u), 'inc') ~= current then
      local name, left = drop_user(u, node, 'disconnect', maxlen, fresh)
      table.insert(out, name)
      table.insert(out, left)
    end
  end
  reap_uploads(node, current)
  if not current and redis.call('SCARD', key('node', node, 'users')) == 0 then
    redis.call('SREM', key('nodes'), node)
  end
  return out
end
-- Puts user u in room r (made with spelling when new).  Returns its spelling.
local function enter_room(u, r, spelling)
  local rk = key('room', r)
  if redis.call('EXISTS', rk) == 0 then
    redis.call('HSET', rk, 'name', spelling)
    redis.call('ZADD', key('rooms'), 0, r)
  end
  redis.call('ZADD', key('room', r, 'members'), 0, u)
  redis.call('HSET', key('user', u), 'room', r)
  return redis.call('HGET', rk, 'name')
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


#: ARGV: P, node, lease_ms, maxlen, fresh, token -> {"ok", incarnation,
#: inbox epoch, inbox offset, ~all epoch, ~all offset} | {"in-use"}; tells every node (``node-joined`` on ``~all``).  ``token``
#: (random, one per process) makes it safe to repeat: a registration whose
#: answer was lost, asked again by the same process while its lease is
#: live, gets the same incarnation rather than ``in-use``.
REGISTER = Script("register", r"""
local node, ms, maxlen, fresh, token = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6] or ''
local lk = key('node', node, 'lease')
local ok = key('node', node, 'owner')
local current = redis.call('GET', lk)
if current then
  -- the same process asking again (its first answer was lost): the same incarnation
  if token ~= '' and redis.call('GET', ok) == token then
    redis.call('PEXPIRE', lk, ms)
    return {'ok', current}
  end
  return {'in-use'}
end
-- A node's first incarnation in this Redis starts from Redis's clock (ms),
-- so that after Redis lost its state no incarnation is ever given twice:
-- a request of an incarnation from before the loss, delivered late, is fenced.
local ik = key('node', node, 'incarnation')
if redis.call('EXISTS', ik) == 0 then
  local now = redis.call('TIME')
  redis.call('SET', ik, now[1] * 1000 + math.floor(now[2] / 1000))
end
local inc = redis.call('INCR', ik)
redis.call('SET', lk, inc, 'PX', ms)
redis.call('SET', ok, token)
redis.call('SADD', key('nodes'), node)
pub('~all', 'node-joined\n' .. node, maxlen, fresh)
-- where this node's inbox and the cluster events stand: followed from here
local function at(r)
  return redis.call('GET', key('room', r, 'epoch')) or '',
         tonumber(redis.call('GET', key('room', r, 'offset')) or '0')
end
local ie, io = at('~' .. string.lower(node))
local ae, ao = at('~all')
return {'ok', inc, ie, io, ae, ao}
""")

#: ARGV: P, node, inc, lease_ms -> {"ok"} | {"fenced"}.  Never brings a
#: lease back once it has run out.
RENEW = Script("renew", r"""
local node, inc, ms = ARGV[2], ARGV[3], ARGV[4]
if not live(node, inc) then return {'fenced'} end
redis.call('PEXPIRE', key('node', node, 'lease'), ms)
return {'ok'}
""")

#: ARGV: P, node, inc, maxlen, fresh -> {"ok", user, room, ...} | {"fenced"}: a clean stop
#: that releases all the node's users and rooms at once.
DEREGISTER = Script("deregister", r"""
local node, inc, maxlen, fresh = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
if not live(node, inc) then return {'fenced'} end
redis.call('DEL', key('node', node, 'lease'))
local out = reap(node, maxlen, fresh)
pub('~all', 'node-left\n' .. node .. '\n' .. (#out / 2), maxlen, fresh)
table.insert(out, 1, 'ok')
return out
""")

#: ARGV: P, node, maxlen, fresh -> {user, room, ...}: the users of ``node`` that are not of
#: its live incarnation (all when it is dead), taken out.
REAP = Script("reap", r"""
local node, maxlen, fresh = ARGV[2], ARGV[3], ARGV[4]
local out = reap(node, maxlen, fresh)
if #out > 0 then
  pub('~all', 'node-lost\n' .. node .. '\n' .. (#out / 2), maxlen, fresh)
end
return out
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

#: ARGV: P, node, inc, user (folded), name, flags, maxlen, fresh -> {"ok"} |
#: {"taken"} | {"fenced"}.  A name held for a node whose lease ran out (not
#: reaped yet) is taken over at once: its old user is dropped as a reap would.
CLAIM = Script("claim", r"""
local node, inc, u, name, flags = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local maxlen, fresh = ARGV[7] or 1000, ARGV[8] or 'e'
if not live(node, inc) then return {'fenced'} end
local uk = key('user', u)
local holder = redis.call('HMGET', uk, 'node', 'inc')
if holder[1] then
  if live(holder[1], holder[2]) then return {'taken'} end
  -- held for a node presumed dead and not reaped yet: its user is gone
  drop_user(u, holder[1], 'disconnect', maxlen, fresh)
end
redis.call('HSET', uk, 'name', name, 'node', node, 'inc', inc, 'flags', flags or '')
redis.call('ZADD', key('users'), 0, u)
redis.call('SADD', key('node', node, 'users'), u)
return {'ok'}
""")

#: ARGV: P, node, inc, user, event ("leave", "disconnect" or "" for none),
#: maxlen, fresh -> {"ok", room or "", members left} | {"not-owner"} | {"fenced"}
RELEASE = Script("release", r"""
local node, inc, u, event, maxlen, fresh = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if not live(node, inc) then return {'fenced'} end
if not owns(u, node, inc) then return {'not-owner'} end
local uk = key('user', u)
local r = redis.call('HGET', uk, 'room')
local _, left = drop_user(u, node, event or '', maxlen or 1000, fresh or 'e')
local count = 0
if r then count = redis.call('ZCARD', key('room', r, 'members')) end
return {'ok', left, count}
""")

#: ARGV: P, node, inc, user, room (folded), room spelling, capacity, maxlen,
#: fresh -> {"ok"|"same", room, left or "", left's members after, epoch,
#: offset, member, ...} | {"room-full"} | {"not-owner"} | {"fenced"}.  The
#: presence events (``leave`` in the room left, ``join``) are in the same step.  Leaving the previous room is the same step.
JOIN = Script("join", r"""
local node, inc, u, r, spelling = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local capacity = tonumber(ARGV[7])
local maxlen, fresh = ARGV[8] or 1000, ARGV[9] or 'e'
if not live(node, inc) then return {'fenced'} end
if not owns(u, node, inc) then return {'not-owner'} end
local uk = key('user', u)
local rk = key('room', r)
local mk = key('room', r, 'members')
local status, left, left_count = 'same', '', 0
if redis.call('HGET', uk, 'room') ~= r then
  if redis.call('ZCARD', mk) >= capacity then return {'room-full'} end
  left, left_count = leave_room(u, 'leave', maxlen, fresh)
  left = left or ''
  enter_room(u, r, spelling)
  status = 'ok'
  if redis.call('ZCARD', mk) > 1 then
    presence(r, u, 'join', maxlen, fresh)
  end
end
local epoch = redis.call('GET', key('room', r, 'epoch')) or ''
local offset = tonumber(redis.call('GET', key('room', r, 'offset')) or '0')
local out = {status, redis.call('HGET', rk, 'name'), left, left_count, epoch, offset}
for _, name in ipairs(spellings(redis.call('ZRANGE', mk, 0, -1))) do
  table.insert(out, name)
end
return out
""")

#: ARGV: P, node, inc, user, maxlen, fresh -> {"ok", room, members after} | {"not-in-room"} |
#: {"not-owner"} | {"fenced"}
LEAVE = Script("leave", r"""
local node, inc, u = ARGV[2], ARGV[3], ARGV[4]
local maxlen, fresh = ARGV[5] or 1000, ARGV[6] or 'e'
if not live(node, inc) then return {'fenced'} end
if not owns(u, node, inc) then return {'not-owner'} end
local left, count = leave_room(u, 'leave', maxlen, fresh)
if not left then return {'not-in-room'} end
return {'ok', left, count}
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

#: ARGV: P, node, inc, room (folded), payload, maxlen, new epoch, sender ->
#: {"ok", epoch, offset, delivered} | {"fenced"} (delivered: the room's
#: members but the sender, on every node).  The Centrifuge way: the offset is
#: INCR'd, the payload goes into the capped stream under id <offset>-0 and
#: is PUBLISHed as "<epoch>:<offset>:<payload>", all in one step.
PUBLISH = Script("publish", r"""
local node, inc, r, payload = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local maxlen, fresh, sender = ARGV[6], ARGV[7], ARGV[8] or ''
if not live(node, inc) then return {'fenced'} end
local epoch, offset = pub(r, payload, maxlen, fresh)
local delivered = redis.call('ZCARD', key('room', r, 'members'))
if sender ~= '' and redis.call('ZSCORE', key('room', r, 'members'), sender) then
  delivered = delivered - 1
end
return {'ok', epoch, offset, delivered}
""")

#: ARGV: P, room (folded) -> {epoch or "", offset}: where the room's sequence is.
POSITION = Script("position", r"""
local r = ARGV[2]
local epoch = redis.call('GET', key('room', r, 'epoch')) or ''
local offset = tonumber(redis.call('GET', key('room', r, 'offset')) or '0')
return {epoch, offset}
""")

#: ARGV: P, node, inc, user (folded), frame JSON, maxlen, fresh ->
#: {"ok", spelling, node} | {"no-such-user"} | {"fenced"}: a frame for the
#: user wherever it is, through its node's inbox ("~<node>"), in order.
TO_USER = Script("to-user", r"""
local node, inc, u, frame, maxlen, fresh = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6], ARGV[7]
if not live(node, inc) then return {'fenced'} end
local h = redis.call('HMGET', key('user', u), 'name', 'node')
if not h[1] then return {'no-such-user'} end
pub('~' .. string.lower(h[2]), 'frame\n' .. u .. '\n\n' .. frame, maxlen, fresh)
return {'ok', h[1], h[2]}
""")

#: ARGV: P, user (folded) -> {"ok", spelling, node, flags} | {"no-such-user"}
LOCATE = Script("locate", r"""
local h = redis.call('HMGET', key('user', ARGV[2]), 'name', 'node', 'flags')
if not h[1] then return {'no-such-user'} end
return {'ok', h[1], h[2], h[3] or ''}
""")

#: ARGV: P, node, inc, user (folded), name, flags, room (folded or ""),
#: room spelling, capacity, maxlen, fresh -> {"ok", room joined or ""} |
#: {"taken"} | {"fenced"}: a user of this node held again after Redis lost
#: its state (claim, then join its room when there is space).  No presence
#: event: the others never saw it leave.
REASSERT = Script("reassert", r"""
local node, inc, u, name, flags = ARGV[2], ARGV[3], ARGV[4], ARGV[5], ARGV[6]
local r, spelling, capacity = ARGV[7], ARGV[8], tonumber(ARGV[9])
local maxlen, fresh = ARGV[10], ARGV[11]
if not live(node, inc) then return {'fenced'} end
local uk = key('user', u)
local h = redis.call('HMGET', uk, 'node', 'inc')
if h[1] and h[1] ~= node then
  if live(h[1], h[2]) then return {'taken'} end
  drop_user(u, h[1], 'disconnect', maxlen, fresh)  -- held for a dead node
  h = {false, false}
end
if h[1] then  -- ours, of an older incarnation (Redis kept its data): ours again
  redis.call('HSET', uk, 'inc', inc)
else
  redis.call('HSET', uk, 'name', name, 'node', node, 'inc', inc, 'flags', flags)
  redis.call('ZADD', key('users'), 0, u)
  redis.call('SADD', key('node', node, 'users'), u)
end
if r == '' then return {'ok', ''} end
local mk = key('room', r, 'members')
if redis.call('HGET', uk, 'room') == r then return {'ok', spelling} end
if redis.call('ZCARD', mk) >= capacity then return {'ok', ''} end
return {'ok', enter_room(u, r, spelling)}
""")

ALL = (REGISTER, RENEW, DEREGISTER, REAP, DEAD_NODES, CLAIM, RELEASE, JOIN, LEAVE,
       MEMBERS, USERS, ROOMS, PUBLISH, POSITION, TO_USER, LOCATE, REASSERT)

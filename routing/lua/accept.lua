-- A volunteer accepts the offer ringing on their console.
-- Fields: volunteer, task
local vid, tid = fields(2)
local t = load_task_fields(tid, 'vol', 'offered_at', 'cls', 'ck', 'dept', 'answered', 'channel', 'ring',
  'created')
if not t then return fail('unknown_task', tid) end
if t.state == 'assigned' and t.vol == vid then return 'already' end
if t.state == 'ended' or t.state == 'wrapup' then return fail('task_already_ended', tid) end
if t.state ~= 'reserved' then return fail('offer_expired', tid) end
if t.vol ~= vid then return fail('offer_not_yours', tid) end
if NOW > tonumber(t.offered_at) + cfg('ring_ms') then return fail('offer_expired', tid) end
-- A call takes the volunteer whole: reserved until now and busy from now, they were in no free set
-- and stay out of all, and nothing else can be offered to them; so only their load and misses are
-- read (the whole volunteer, for a chat, which may leave them free for another).
local voice, v = t.cls == 'voice', nil
if voice then
  local load, misses = unpack(redis.call('HMGET', K.vol(vid), 'load_voice', 'misses'))
  v = {id = vid, load_voice = load, misses = misses}
else -- cold: the chat path's definitions are made only for a chat
  v = load_vol(vid)
end
local field = voice and 'load_voice' or 'load_chat'
v[field] = tostring(tonumber(v[field]) + 1)
-- acc_misses: kept with the task so that if the volunteer's phone leg then fails (give_back),
-- the streak goes on.
redis.call('HSET', K.task(tid), 'state', 'assigned', 'assigned_at', NOW_S, 'answered', '1',
  'acc_misses', v.misses)
v.reserved, v.misses, v.idle_since = '', '0', NOW_S
redis.call('HSET', K.vol(vid), field, v[field], 'reserved', '', 'misses', '0', 'idle_since', v.idle_since)
redis.call('ZREM', K.timers(), 'r:' .. tid)
if t.ck ~= '' then
  redis.call('HSET', K.recent(t.ck), 'vol', vid, 'dept', t.dept, 'until', n2s(NOW + cfg('recent_caller_ms')))
  redis.call('PEXPIRE', K.recent(t.ck), cfg_s('recent_caller_ms'))
end
local wait = waited_ms(t)
if t.answered ~= '1' then
  stat('answered_' .. t.channel)
  stat('answered_ring' .. t.ring)
  stat('wait_ms', wait)
  if wait <= cfg('service_level_ms') then stat('answered_within_sl') end
end
emit('task_assigned', tid, vid, 'ring', t.ring, 'waited_ms', n2s(wait), 'channel', t.channel)
if not voice then -- cold
  refresh_free(v)
  dispatch_volunteer(v)
end
return 'assigned'

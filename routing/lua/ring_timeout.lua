-- Nobody answered an offer in time: next volunteer; after N misses in a row, pause.
-- ARGV: 4 task
local tid = ARGV[4]
redis.call('ZREM', K.timers(), 'r:' .. tid)
local t = load_task(tid)
if not t or t.state ~= 'reserved' then return {'ok', 'stale'} end
if NOW < tonumber(t.offered_at) + CFG.ring_ms then
  redis.call('ZADD', K.timers(), n2s(tonumber(t.offered_at) + CFG.ring_ms), 'r:' .. tid)
  return {'ok', 'early'}
end
local v = load_vol(t.vol)
drop_reservation(v)
v.misses = tostring(tonumber(v.misses) + 1)
redis.call('HSET', K.vol(v.id), 'misses', v.misses)
emit('offer_timeout', tid, v.id, 'misses', v.misses)
local emptied = {}
if tonumber(v.misses) >= CFG.max_no_answer and v.presence == 'available' then
  v.presence, v.reason = 'paused', 'sans réponse'
  redis.call('HSET', K.vol(v.id), 'presence', 'paused', 'reason', v.reason, 'presence_since', n2s(NOW))
  emptied = set_on_duty(v, -1)
  emit('volunteer_presence', '', v.id, 'presence', 'paused', 'reason', v.reason)
else
  v.blocked_until = n2s(NOW + CFG.no_answer_delay_ms)
  redis.call('HSET', K.vol(v.id), 'blocked_until', v.blocked_until)
  redis.call('ZADD', K.timers(), v.blocked_until, 'u:' .. v.id)
end
refresh_free(v)
-- Not answered by the volunteer it was waiting for: the next volunteer, now.
if t.pref == v.id then forget_preference(t) end
requeue(t)
if v.presence == 'paused' then end_preferences(v.id) end
skip_empty_rings(emptied)
return {'ok', v.presence}

-- Nobody answered an offer in time: next volunteer; after N misses in a row, pause.
-- Fields: task
local tid = fields(1)
redis.call('ZREM', K.timers(), 'r:' .. tid)
local t = load_task(tid)
if not t or t.state ~= 'reserved' then return 'stale' end
if NOW < tonumber(t.offered_at) + cfg('ring_ms') then
  redis.call('ZADD', K.timers(), n2s(tonumber(t.offered_at) + cfg('ring_ms')), 'r:' .. tid)
  return 'early'
end
local v = load_vol(t.vol)
drop_reservation(v)
add_miss(v)
emit('offer_timeout', tid, v.id, 'misses', v.misses)
local emptied = pause_or_block(v)
refresh_free(v)
-- Not answered by the volunteer it was waiting for: the next volunteer, now.
if t.pref == v.id then forget_preference(t) end
requeue(t)
if v.presence == 'paused' then end_preferences(v.id) end
skip_empty_rings(emptied)
return v.presence

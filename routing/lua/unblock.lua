-- Timer: a volunteer's delay after a decline or a missed offer is over.
-- Fields: volunteer
local vid = fields(1)
redis.call('ZREM', K.timers(), 'u:' .. vid)
local v = load_vol(vid)
if not v then return 'stale' end
if tonumber(v.blocked_until) > NOW then
  redis.call('ZADD', K.timers(), v.blocked_until, 'u:' .. vid)
  return 'early'
end
refresh_free(v)
dispatch_volunteer(v)
return 'free'

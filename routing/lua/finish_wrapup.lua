-- The volunteer submits the wrap-up (or its time runs out): capacity comes back.
-- ARGV: 4 volunteer ('' = timer), 5 task
local vid, tid = ARGV[4], ARGV[5]
local t = load_task(tid)
if vid == '' then
  redis.call('ZREM', K.timers(), 'x:' .. tid)
  if not t or t.state ~= 'wrapup' then return {'ok', 'stale'} end
  local due = tonumber(t.completed_at) + CFG.wrapup_ms
  if NOW < due then redis.call('ZADD', K.timers(), n2s(due), 'x:' .. tid) return {'ok', 'early'} end
else
  if not t then return fail('unknown_task', tid) end
  if t.state ~= 'wrapup' or t.vol ~= vid then return fail('not_in_wrapup', tid) end
end
end_task(t, 'completed', vid == '' and 'wrapup_timeout' or '')
stat('wrapup_ms', NOW - tonumber(t.completed_at))
release(load_vol(t.vol), t)
return {'ok', 'ended'}

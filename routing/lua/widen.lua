-- Timer: a waiting task crossed a threshold (ring, skill relaxing, preferred volunteer's turn).
-- Fields: task
local tid = fields(1)
redis.call('ZREM', K.timers(), 'w:' .. tid)
local t = load_task(tid)
if not t or t.state ~= 'waiting' then return 'stale' end
if t.pref ~= '' and tonumber(t.pref_until) <= NOW then
  redis.call('ZREM', K.wait(t.cls, 'p:' .. t.pref), tid)
  t.pref, t.pref_until = '', '0'
  redis.call('HSET', K.task(tid), 'pref', '', 'pref_until', '0')
end
set_level(t, target_level(t))
schedule_task_timer(t)
dispatch_task(t)
return t.level

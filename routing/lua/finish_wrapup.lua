-- The volunteer submits the wrap-up (or its time runs out): capacity comes back.
-- Fields: volunteer, task, 'timer' when the wrap-up timer runs it (volunteer then '') or ''
local vid, tid, by = fields(3)
local by_timer = by == 'timer'
local t = load_task_fields(tid, 'vol', 'completed_at', 'channel', 'cls')
if by_timer then
  redis.call('ZREM', K.timers(), 'x:' .. tid)
  if not t or t.state ~= 'wrapup' then return 'stale' end
  local due = tonumber(t.completed_at) + cfg('wrapup_ms')
  if NOW < due then redis.call('ZADD', K.timers(), n2s(due), 'x:' .. tid) return 'early' end
else
  if vid == '' then return fail('volunteer_required', tid) end
  if not t then return fail('unknown_task', tid) end
  if t.state ~= 'wrapup' or t.vol ~= vid then return fail('not_in_wrapup', tid) end
end
end_task(t, 'completed', by_timer and 'wrapup_timeout' or '')
stat('wrapup_ms', NOW - tonumber(t.completed_at))
release(load_vol(t.vol), t)
return 'ended'

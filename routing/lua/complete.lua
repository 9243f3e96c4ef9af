-- The conversation is over: the task ends as completed, the volunteer goes to wrap-up.
-- Fields: volunteer ('' = the caller hung up), task
local vid, tid = fields(2)
local t = load_task_fields(tid, 'vol', 'assigned_at', 'channel')
if not t then return fail('unknown_task', tid) end
if t.state == 'wrapup' or t.state == 'ended' then return fail('task_already_ended', tid) end
if t.state ~= 'assigned' or (vid ~= '' and t.vol ~= vid) then return fail('task_not_assigned', tid) end
redis.call('HSET', K.task(tid), 'state', 'wrapup', 'outcome', 'completed', 'completed_at', NOW_S)
redis.call('ZADD', K.timers(), n2s(NOW + cfg('wrapup_ms')), 'x:' .. tid)
stat('completed')
stat('handle_ms', NOW - tonumber(t.assigned_at))
emit('task_completed', tid, t.vol, 'handle_ms', n2s(NOW - tonumber(t.assigned_at)), 'channel', t.channel)
return 'wrapup'

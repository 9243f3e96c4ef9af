-- A coordinator moves a task up or down the queue. Fields: task, priority (0-9)
local tid, priority = fields(2)
local t = load_task(tid)
if not t then return fail('unknown_task', tid) end
if t.state ~= 'waiting' and t.state ~= 'reserved' then return fail('task_not_waiting', tid) end
t.priority = priority
redis.call('HSET', K.task(tid), 'priority', priority)
if t.state == 'waiting' then wait_add(t, 0) end
emit('task_priority', tid, '', 'priority', priority)
return priority

-- A coordinator moves a task up or down the queue. ARGV: 2 task, 3 priority (0-9)
local tid, priority = ARGV[2], ARGV[3]
local t = load_task(tid)
if not t then return fail('unknown_task', tid) end
if t.state ~= 'waiting' and t.state ~= 'reserved' then return fail('task_not_waiting', tid) end
t.priority = priority
redis.call('HSET', K.task(tid), 'priority', priority)
if t.state == 'waiting' then wait_add(t, 0) end
emit('task_priority', tid, '', 'priority', priority)
return priority

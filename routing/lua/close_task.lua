-- End a task nobody is handling, with a reason (line closed, nobody could take it).
-- Fields: task; ARGV[2]: the reason
local tid, reason = fields(1), ARGV[2]
local t = load_task(tid)
if not t then return fail('unknown_task', tid) end
if t.state == 'wrapup' or t.state == 'ended' then return fail('task_already_ended', tid) end
if t.state == 'assigned' then return fail('task_not_waiting', tid) end
local v = nil
if t.state == 'reserved' then v = load_vol(t.vol) drop_reservation(v) end
stat('closed')
end_task(t, 'closed', reason)
if v then refresh_free(v) dispatch_volunteer(v) end
return 'closed'

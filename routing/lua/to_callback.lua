-- A waiting caller asks to be called back: the call ends, a callback task takes its place.
-- Fields: task, callback task id
local tid, cid = fields(2)
local t = load_task(tid)
if not t then return fail('unknown_task', tid) end
if t.state == 'wrapup' or t.state == 'ended' then return fail('task_already_ended', tid) end
if t.state == 'assigned' then return fail('task_not_waiting', tid) end
if redis.call('EXISTS', K.task(cid)) == 1 then return fail('task_exists', cid) end
local v = nil
if t.state == 'reserved' then v = load_vol(t.vol) drop_reservation(v) end
stat('callback')
end_task(t, 'callback', cid)
if v then refresh_free(v) end
local c = new_task(cid, 'callback', t.enq)
for _, f in ipairs({'dept', 'region', 'groups', 'skill', 'lang', 'priority', 'ck', 'need_until', 'excl',
  'passed_on'}) do c[f] = t[f] end
c.level = t.level
create_task(c, tid)
-- Reload: creating the callback may already have offered it to this very volunteer.
if v then dispatch_volunteer(load_vol(v.id)) end
return c.state

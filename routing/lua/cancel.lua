-- The caller left. Waiting or ringing: abandoned (place kept for a while). Talking: completed.
-- Idempotent, because Twilio retries its callbacks. Fields: task
local tid = fields(1)
local t = load_task(tid)
if not t then return fail('unknown_task', tid) end
if t.state == 'wrapup' or t.state == 'ended' then return 'already' end
if t.state == 'assigned' then
  redis.call('HSET', K.task(tid), 'state', 'wrapup', 'outcome', 'completed', 'completed_at', NOW_S)
  redis.call('ZADD', K.timers(), n2s(NOW + cfg('wrapup_ms')), 'x:' .. tid)
  stat('completed')
  stat('handle_ms', NOW - tonumber(t.assigned_at))
  emit('task_completed', tid, t.vol, 'handle_ms', n2s(NOW - tonumber(t.assigned_at)), 'channel', t.channel)
  return 'wrapup'
end
local v = nil
if t.state == 'reserved' then v = load_vol(t.vol) drop_reservation(v) end
local window = t.ck ~= '' and cfg('resume_window_ms') or 0
if window > 0 then -- 0: no resume (and PX 0 is an error)
  -- Also after a lost line or a transfer: waiting again, the caller was not done.
  -- The window is checked on the engine's clock at enqueue (deadline first); PX only cleans up.
  -- deadline|place|priority|task|passed on for (skill)|passed on by (volunteers): a caller who
  -- calls back reaches the help they were sent to, and not those who sent them on. Task ids
  -- hold no '|' (Engine), volunteer ids no ','.
  redis.call('SET', K.resume(t.ck), n2s(NOW + window) .. '|' .. t.enq .. '|' .. t.priority .. '|' ..
    tid .. '|' .. (t.passed_on or '') .. '|' .. (t.excl or ''), 'PX', n2s(window))
end
-- A contact is answered or abandoned, not both: one who leaves after being answered (then
-- given back or transferred) was counted answered (web.coordination.history agrees).
if t.answered ~= '1' then
  stat('abandoned_' .. t.channel)
  if waited_ms(t) < cfg('short_abandon_ms') then stat('abandoned_short') end
end
end_task(t, 'abandoned', 'caller_left')
if v then refresh_free(v) dispatch_volunteer(v) end
return 'abandoned'

-- The volunteer accepted, but cannot be reached: their phone leg failed (busy, no answer,
-- voicemail, failed), or their console stayed lost while they held a chat (volunteers/
-- console.py). The task goes back to its place, and for the volunteer it counts as a missed
-- offer (the no-answer delay keeps the task from ringing that phone again at once; after
-- max_no_answer in a row, the pause "sans réponse").
-- Fields: volunteer, task
local vid, tid = fields(2)
local t = load_task(tid)
if not t then return fail('unknown_task', tid) end
if t.state == 'wrapup' or t.state == 'ended' then return fail('task_already_ended', tid) end
if t.state ~= 'assigned' or t.vol ~= vid then return fail('task_not_assigned', tid) end
local v = load_vol(vid)
-- The accept cleared the misses in a row; the leg failing undoes that accept.
add_miss(v, tonumber(t.acc_misses or '0'))
redis.call('HSET', K.task(tid), 'acc_misses', '0')
redis.call('HINCRBY', K.task(tid), 'transfers', 1)
-- task_transferred: what consoles and the history already read as "this task left its volunteer".
emit('task_transferred', tid, vid, 'skill', '', 'to', '', 'back', '1', 'misses', v.misses)
stat('transferred')
local emptied = pause_or_block(v)
-- Paused with another chat ringing: that offer goes back to its place, as a pause by hand does.
local ringing = ''
if v.presence == 'paused' and v.reserved ~= '' then
  ringing = v.reserved
  drop_reservation(v)
end
-- Out of the free sets before the task looks for someone: a chat volunteer may have room left.
refresh_free(v)
-- Failed on the volunteer it was waiting for (a returning caller's): the next volunteer, now.
if t.pref == vid then forget_preference(t) end
requeue(t)
if ringing ~= '' then requeue(load_task(ringing)) end
release(load_vol(vid), t)
if v.presence == 'paused' then end_preferences(vid) end
skip_empty_rings(emptied)
return v.presence

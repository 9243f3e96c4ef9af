-- Who of the line's volunteers is logged in and who is working, at one instant: the counts the
-- transitions keep (restaff). Absent (a new line, or one from before they were kept): counted
-- here once from every volunteer, by the same rule (staff_share), then kept.
local counts = redis.call('HMGET', K.staff(), 'logged_in', 'working', 'lanes')
if counts[1] then return counts end
counts = {0, 0, 0}
for _, vid in ipairs(redis.call('SMEMBERS', K.vols())) do
  local f = redis.call('HMGET', K.vol(vid), 'presence', 'load_voice', 'load_chat', 'chat_cap')
  if f[1] then
    local share = staff_share({presence = f[1], load_voice = f[2] or '0', load_chat = f[3] or '0',
      chat_cap = f[4] or '0'})
    for i = 1, 3 do counts[i] = counts[i] + share[i] end
  end
end
redis.call('HSET', K.staff(), 'logged_in', counts[1], 'working', counts[2], 'lanes', counts[3])
return counts

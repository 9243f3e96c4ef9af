-- Who of the line's volunteers is logged in and who is working, at one instant: the counts the
-- transitions keep (restaff). Absent (a new line, or one from before they were kept): counted
-- here once from every volunteer, then kept. Working: available, or paused with a conversation
-- still in hand; lanes: their chat capacity.
local counts = redis.call('HMGET', K.staff(), 'logged_in', 'working', 'lanes')
if counts[1] then return counts end
local logged_in, working, lanes = 0, 0, 0
for _, vid in ipairs(redis.call('SMEMBERS', K.vols())) do
  local v = redis.call('HMGET', K.vol(vid), 'presence', 'load_voice', 'load_chat', 'chat_cap')
  local presence = v[1]
  if presence and presence ~= 'logged_out' then
    logged_in = logged_in + 1
    local busy = tonumber(v[2] or '0') > 0 or tonumber(v[3] or '0') > 0
    if presence == 'available' or (presence == 'paused' and busy) then
      working = working + 1
      lanes = lanes + tonumber(v[4] or '0')
    end
  end
end
redis.call('HSET', K.staff(), 'logged_in', logged_in, 'working', working, 'lanes', lanes)
return {logged_in, working, lanes}

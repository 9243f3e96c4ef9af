-- Read-only: who of the line's volunteers is logged in and who is working, at one instant.
-- Working: available, or paused with a conversation still in hand; lanes: their chat capacity.
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
return {logged_in, working, lanes}

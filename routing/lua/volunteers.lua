-- Read-only: the hashes of the volunteers named in ARGV, each as HGETALL returns it (empty when
-- gone). One reply for a few hundred volunteers: a pipeline of as many HGETALL cost the
-- dashboard's builder ~25 µs of Python per volunteer in redis-py's per-command path.
local out = {}
for i, vid in ipairs(ARGV) do out[i] = redis.call('HGETALL', K.vol(vid)) end
return out

-- lock: apply a flock or byte-range lock decision made by the client with the shared rules
-- (meta_core::session::flock_decision / setlk_decision) from the lock records it read,
-- if and only if those records are unchanged; else ask for a retry.
-- KEYS: 1 token, 2 attr, 3 sessions, 4 the inode's lock hash (flocks or plocks), 5 the
--       session's locks
-- ARGV: 3 ino8, 4 sid8, 5 field (sid8 .. owner8), 6 kind tag ('F' or 'P'), 7 number n of
--       fields read, 8..7+2n the fields and values read, then the decision: 'set' value |
--       'del' | 'keep' | 'err' kind message
-- Reply: {'ok'}
return run_op(function()
  local ino8, sid8, field, tag = ARGV[3], ARGV[4], ARGV[5], ARGV[6]
  existing_attr(KEYS[2], ino8)
  live_session(KEYS[3], sid8)
  local n = tonumber(ARGV[7])
  local cur = redis.call('HGETALL', KEYS[4])
  if #cur ~= 2 * n then retry('the locks of inode ' .. dec(ino8) .. ' changed') end
  local seen = {}
  for i = 1, n do seen[ARGV[6 + 2 * i]] = ARGV[7 + 2 * i] end
  for i = 1, #cur, 2 do
    if seen[cur[i]] ~= cur[i + 1] then retry('the locks of inode ' .. dec(ino8) .. ' changed') end
  end
  redis.call('SISMEMBER', KEYS[5], tag .. ino8)
  local d = 8 + 2 * n
  local what = ARGV[d]
  if what == 'err' then fail(ARGV[d + 1], ARGV[d + 2]) end
  -- Writes.
  if what == 'set' then
    redis.call('HSET', KEYS[4], field, ARGV[d + 1])
    redis.call('SADD', KEYS[5], tag .. ino8)
  elseif what == 'del' then
    redis.call('HDEL', KEYS[4], field)
    if #session_fields(KEYS[4], sid8) == 0 then redis.call('SREM', KEYS[5], tag .. ino8) end
  end
  return { 'ok' }
end)

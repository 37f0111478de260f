-- heartbeat: move a session's expiry on (logic::session::heartbeat).
-- KEYS: 1 token, 2 sessions
-- ARGV: 3 sid8, 4 new expiry time12
-- Reply: {'ok'}
return run_op(function()
  local v = redis.call('HGET', KEYS[2], ARGV[3])
  if not v then
    fail('NotFound', 'session ' .. dec(ARGV[3]) .. ' does not exist (closed, or cleaned up after it expired)')
  end
  if #v < 13 or string.byte(v, 1) ~= 1 then
    fail('Corrupted', 'session ' .. dec(ARGV[3]) .. ': undecodable record')
  end
  redis.call('HSET', KEYS[2], ARGV[3], VER .. ARGV[4] .. string.sub(v, 14))
  return { 'ok' }
end)

-- open_session: register a session (logic::session::open_session).
-- KEYS: 1 token, 2 sessions
-- ARGV: 3 sid8, 4 record (version byte, expiry time12, description JSON)
-- Reply: {'ok'}
return run_op(function()
  if redis.call('HEXISTS', KEYS[2], ARGV[3]) == 1 then
    fail('AlreadyExists', 'session ' .. dec(ARGV[3]) .. ' exists')
  end
  redis.call('HSET', KEYS[2], ARGV[3], ARGV[4])
  return { 'ok' }
end)

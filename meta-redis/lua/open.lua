-- open: record that a session holds an inode open (logic::session::open).
-- KEYS: 1 token, 2 attr, 3 sessions, 4 the inode's openers, 5 the session's opens
-- ARGV: 3 ino8, 4 sid8
-- Reply: {'ok', attr}
return run_op(function()
  local ino8, sid8 = ARGV[3], ARGV[4]
  existing_attr(KEYS[2], ino8)
  live_session(KEYS[3], sid8)
  redis.call('SISMEMBER', KEYS[5], ino8)
  -- Writes.
  redis.call('SADD', KEYS[4], sid8)
  redis.call('SADD', KEYS[5], ino8)
  return { 'ok', redis.call('GET', KEYS[2]) }
end)

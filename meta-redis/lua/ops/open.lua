-- open: record that a session holds an inode open (logic::session::open).
-- KEYS: attr openers session_opens
-- FIXED: >c8c8 ino sid
-- ARGS:
-- Reply: {'ok', attr}
OPS.open = function(K, A)
  local ino8, sid8 = struct.unpack('>c8c8', A[1])
  existing_attr(K[1], ino8)
  live_session(sid8)
  check_set(K[3])
  -- Writes.
  redis.call('SADD', K[2], sid8)
  redis.call('SADD', K[3], ino8)
  return { 'ok', raw_attr(K[1]) }
end

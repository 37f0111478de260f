-- open: record that a session holds an inode open (logic::session::open): in the inode's
-- openers set, or for a sustained inode (nlink 0) in its kept openers set (see release.lua).
-- KEYS: attr openers kept_openers session_opens
-- FIXED: >c8c8 ino sid
-- ARGS:
-- Reply: {'ok', attr}
OPS.open = function(K, A)
  local ino8, sid8 = struct.unpack('>c8c8', A[1])
  local a = existing_attr(K[1], ino8)
  live_session(sid8)
  local kop = a.nlink == 0 and K[3] or K[2]
  check_set(K[4])
  -- Writes (the first one, to the openers set, is its own type check).
  redis.call('SADD', kop, sid8)
  redis.call('SADD', K[4], ino8)
  -- Its openers set is written now: the record must stop saying it never was (lib.lua).
  if HINT.clear(a, HINT.NEVER_OPENED) then put_attr(K[1], a) end
  return { 'ok', raw_attr(K[1]) }
end

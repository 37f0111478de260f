-- lock: apply a flock or byte-range lock decision made by the client with the shared rules
-- (meta_core::session::flock_decision / setlk_decision) from the lock records it read, if
-- and only if those records are unchanged; else ask for a retry.
-- KEYS: attr locks session_locks
-- FIXED: >c8c8c16c1 ino sid field tag
-- ARGS: decision payload fields...
-- field: sid8 .. owner8; tag: 'F' (flocks) or 'P' (byte-range locks); decision: 'set'
-- (payload = the value to store), 'del', 'keep' or 'err' (payload = kind \0 message);
-- fields: the field/value pairs read, two arguments each.
-- Reply: {'ok'}
OPS.lock = function(K, A)
  local ino8, sid8, field, tag = struct.unpack('>c8c8c16c1', A[1])
  existing_attr(K[1], ino8)
  live_session(sid8)
  local n = (#A - 3) / 2
  local cur = redis.call('HGETALL', K[2])
  if #cur ~= 2 * n then retry('the locks of inode ' .. dec(ino8) .. ' changed') end
  local seen = {}
  for i = 1, n do seen[A[2 + 2 * i]] = A[3 + 2 * i] end
  for i = 1, #cur, 2 do
    if seen[cur[i]] ~= cur[i + 1] then retry('the locks of inode ' .. dec(ino8) .. ' changed') end
  end
  check_set(K[3])
  local what = A[2]
  if what == 'err' then raise_arg(A[3]) end
  -- Writes.
  if what == 'set' then
    redis.call('HSET', K[2], field, A[3])
    redis.call('SADD', K[3], tag .. ino8)
  elseif what == 'del' then
    redis.call('HDEL', K[2], field)
    if #session_fields(K[2], sid8) == 0 then redis.call('SREM', K[3], tag .. ino8) end
  end
  return { 'ok' }
end

-- lock: apply a flock or byte-range lock decision made by the client with the shared rules
-- (meta_core::session::flock_decision / setlk_decision) from the lock records it read, if
-- those records are unchanged as far as `check` asks; else ask for a retry.
-- KEYS: attr locks session_locks
-- FIXED: >c8c8c16c1B ino sid field tag check
-- ARGS: decision payload fields...
-- field: sid8 .. owner8; tag: 'F' (flocks) or 'P' (byte-range locks); decision: 'set'
-- (payload = the value to store), 'del', 'keep' or 'err' (payload = kind \0 message);
-- fields: the field/value pairs read, two arguments each. check (plan.rs, LockCheck): 0 = the
-- whole hash must be as read; 1 = the same, but a decision that writes nothing ('keep',
-- 'err') stands as of the read (the op is the first of the client's round: nothing of the
-- client ran between the read and it); 2 = an unlock: only the owner's own field must be
-- as read.
-- Reply: {'ok'}
OPS.lock = function(K, A)
  local ino8, sid8, field, tag, check = struct.unpack('>c8c8c16c1B', A[1])
  existing_attr(K[1], ino8)
  live_session(sid8)
  local what = A[2]
  if check == 2 then
    local was = false
    for i = 4, #A, 2 do
      if A[i] == field then was = A[i + 1] end
    end
    if redis.call('HGET', K[2], field) ~= was then
      retry('the locks of inode ' .. dec(ino8) .. ' changed')
    end
  elseif check ~= 1 or what == 'set' or what == 'del' then
    local n = (#A - 3) / 2
    local cur = redis.call('HGETALL', K[2])
    if #cur ~= 2 * n then retry('the locks of inode ' .. dec(ino8) .. ' changed') end
    local seen = {}
    for i = 1, n do seen[A[2 + 2 * i]] = A[3 + 2 * i] end
    for i = 1, #cur, 2 do
      if seen[cur[i]] ~= cur[i + 1] then retry('the locks of inode ' .. dec(ino8) .. ' changed') end
    end
  end
  check_set(K[3])
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

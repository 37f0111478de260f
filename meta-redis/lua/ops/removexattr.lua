-- removexattr: remove an extended attribute; ENODATA when absent (logic's RemoveXattr).
-- KEYS: attr xattrs
-- FIXED: >c8 ino
-- ARGS: name
-- Reply: {'ok'}
OPS.removexattr = function(K, A)
  local ino8 = struct.unpack('>c8', A[1])
  local name = A[2]
  existing_attr(K[1], ino8)
  local cur = redis.call('HGET', K[2], name)
  if cur and string.sub(cur, 1, 1) ~= VER then
    fail('Corrupted', 'xattr ' .. show(name) .. ' of inode ' .. dec(ino8) .. ': undecodable')
  end
  if not cur then fail('NoData', 'removexattr ' .. dec(ino8) .. ' ' .. show(name)) end
  -- Writes.
  redis.call('HDEL', K[2], name)
  return { 'ok' }
end

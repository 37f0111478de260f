-- removexattr: remove an extended attribute; ENODATA when absent (logic's RemoveXattr),
-- after perm::check_xattr_write.
-- The caller: caller_uid, caller_gid and `groups` (supplementary groups, 4 bytes each).
-- KEYS: attr xattrs
-- FIXED: >c8c4c4 ino caller_uid caller_gid
-- ARGS: name groups
-- Reply: {'ok'}
OPS.removexattr = function(K, A)
  local ino8, cuid, cgid = struct.unpack('>c8c4c4', A[1])
  local name = A[2]
  local a = existing_attr(K[1], ino8)
  perm_check_xattr_write(a, ino8, perm_caller(cuid, cgid, A[3]), name)
  local cur = redis.call('HGET', K[2], name)
  if cur and string.sub(cur, 1, 1) ~= VER then
    fail('Corrupted', 'xattr ' .. show(name) .. ' of inode ' .. dec(ino8) .. ': undecodable')
  end
  if not cur then fail('NoData', 'removexattr ' .. dec(ino8) .. ' ' .. show(name)) end
  -- Writes.
  redis.call('HDEL', K[2], name)
  return { 'ok' }
end

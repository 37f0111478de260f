-- setxattr: set an extended attribute with CREATE / REPLACE semantics
-- (logic::data::setxattr), checked by perm::check_xattr_write.
-- The caller: caller_uid, caller_gid and `groups` (supplementary groups, 4 bytes each).
-- KEYS: attr xattrs
-- FIXED: >c8Bc4c4 ino flags caller_uid caller_gid
-- ARGS: name value groups
-- flags: 0, 1 = CREATE, 2 = REPLACE; xattrs is a hash name -> version byte .. value.
-- Reply: {'ok'}
OPS.setxattr = function(K, A)
  local ino8, flags, cuid, cgid = struct.unpack('>c8Bc4c4', A[1])
  local name = A[2]
  local a = existing_attr(K[1], ino8)
  perm_check_xattr_write(a, ino8, perm_caller(cuid, cgid, A[4]), name)
  local cur = redis.call('HGET', K[2], name)
  if cur and string.sub(cur, 1, 1) ~= VER then
    fail('Corrupted', 'xattr ' .. show(name) .. ' of inode ' .. dec(ino8) .. ': undecodable')
  end
  if flags == 1 and cur then fail('AlreadyExists', 'xattr ' .. show(name) .. ' of ' .. dec(ino8)) end
  if flags == 2 and not cur then fail('NoData', 'xattr ' .. show(name) .. ' of ' .. dec(ino8)) end
  -- Writes.
  redis.call('HSET', K[2], name, VER .. A[3])
  -- Its xattr hash is written now: the record must stop saying it never was (lib.lua).
  if HINT.clear(a, HINT.NO_XATTRS) then put_attr(K[1], a) end
  return { 'ok' }
end

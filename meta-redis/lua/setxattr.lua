-- setxattr: set an extended attribute with CREATE / REPLACE semantics (logic::setxattr).
-- KEYS: 1 token, 2 attr, 3 xattrs (hash name -> version byte .. value)
-- ARGV: 3 ino8, 4 name, 5 value, 6 flags (0, 1 = CREATE, 2 = REPLACE)
-- Reply: {'ok'}
return run_op(function()
  local ino8, name, flags = ARGV[3], ARGV[4], tonumber(ARGV[6])
  existing_attr(KEYS[2], ino8)
  local cur = redis.call('HGET', KEYS[3], name)
  if cur and string.sub(cur, 1, 1) ~= VER then
    fail('Corrupted', 'xattr ' .. show(name) .. ' of inode ' .. dec(ino8) .. ': undecodable')
  end
  if flags == 1 and cur then fail('AlreadyExists', 'xattr ' .. show(name) .. ' of ' .. dec(ino8)) end
  if flags == 2 and not cur then fail('NoData', 'xattr ' .. show(name) .. ' of ' .. dec(ino8)) end
  -- Writes.
  redis.call('HSET', KEYS[3], name, VER .. ARGV[5])
  return { 'ok' }
end)

-- removexattr: remove an extended attribute; ENODATA when absent (logic's RemoveXattr).
-- KEYS: 1 token, 2 attr, 3 xattrs
-- ARGV: 3 ino8, 4 name
-- Reply: {'ok'}
return run_op(function()
  local ino8, name = ARGV[3], ARGV[4]
  existing_attr(KEYS[2], ino8)
  local cur = redis.call('HGET', KEYS[3], name)
  if cur and string.sub(cur, 1, 1) ~= VER then
    fail('Corrupted', 'xattr ' .. show(name) .. ' of inode ' .. dec(ino8) .. ': undecodable')
  end
  if not cur then fail('NoData', 'removexattr ' .. dec(ino8) .. ' ' .. show(name)) end
  -- Writes.
  redis.call('HDEL', KEYS[3], name)
  return { 'ok' }
end)

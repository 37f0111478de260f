-- restore_pending: write a pending-deletion record verbatim, for `load` (logic's
-- RestorePending): a deleted file with its chunks, or a dropped slice. AlreadyExists when
-- the file's inode is live.
-- KEYS: 1 token, 2 attr, 3 chunk index, 4 pending files or slices, 5.. chunk keys
-- ARGV: 3 'file' or 'slice', 4 inode or slice id (u64 BE), 5 length (u64 BE) or size (u32 BE),
--       6 chunks c, then per chunk: index, slices (24 bytes each, '' = none)
-- Reply: {'ok'}
return run_op(function()
  local file, id8 = ARGV[3] == 'file', ARGV[4]
  local nc = tonumber(ARGV[6])
  if file and get_attr(KEYS[2], id8) then
    fail('AlreadyExists', 'inode ' .. dec(id8) .. ' is live; it cannot be pending deletion')
  end
  -- Writes.
  for i = 1, nc do
    local idx, slices = ARGV[6 + (i - 1) * 2 + 1], ARGV[6 + (i - 1) * 2 + 2]
    local key = KEYS[4 + i]
    if slices == '' then
      redis.call('DEL', key)
      redis.call('ZREM', KEYS[3], idx)
    else
      redis.call('SET', key, VER .. slices)
      redis.call('ZADD', KEYS[3], tonumber(idx), idx)
    end
  end
  redis.call('HSET', KEYS[4], id8, ARGV[5])
  return { 'ok' }
end)

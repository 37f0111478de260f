-- clear_pending_file: forget a deleted file once its objects are gone; its chunks go too
-- unless the inode lives again (logic's ClearPendingFile). The chunk indexes were listed
-- beforehand (ARGV[5..], keys KEYS[5..]); a chunk outside that list asks for a retry.
-- KEYS: 1 token, 2 pending files, 3 attr, 4 chunk index, 5.. chunk keys
-- ARGV: 3 ino8, 4 number of chunk keys m, 5..4+m chunk indexes
-- Reply: {'ok'}
return run_op(function()
  local ino8 = ARGV[3]
  if redis.call('HEXISTS', KEYS[2], ino8) == 0 then
    fail('NotFound', 'inode ' .. dec(ino8) .. ' is not pending deletion')
  end
  local doomed
  if not get_attr(KEYS[3], ino8) then
    local known = {}
    for i = 1, tonumber(ARGV[4]) do known[ARGV[4 + i]] = KEYS[4 + i] end
    doomed = {}
    for _, idx in ipairs(redis.call('ZRANGE', KEYS[4], 0, -1)) do
      local key = known[idx]
      if not key then retry('the chunks of inode ' .. dec(ino8) .. ' changed') end
      doomed[#doomed + 1] = key
    end
  end
  -- Writes.
  if doomed then
    for _, key in ipairs(doomed) do redis.call('DEL', key) end
    redis.call('DEL', KEYS[4])
  end
  redis.call('HDEL', KEYS[2], ino8)
  return { 'ok' }
end)

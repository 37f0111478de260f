-- clear_pending_file: forget a deleted file once its objects are gone; its chunks go too
-- unless the inode lives again (logic's ClearPendingFile). The chunk indexes are listed by
-- the client (`chunks`: u32 indexes, keys chunk...; a chunk outside that list asks for a
-- retry) or, without `chunks`, found here.
-- KEYS: attr chunk_index [chunk...]
-- FIXED: >c8 ino
-- ARGS: [chunks]
-- Reply: {'ok'}
OPS.clear_pending_file = function(K, A)
  local ino8 = struct.unpack('>c8', A[1])
  if redis.call('HEXISTS', S.pf, ino8) == 0 then
    fail('NotFound', 'inode ' .. dec(ino8) .. ' is not pending deletion')
  end
  local doomed
  if not raw_attr(K[1]) then
    local known = chunk_keys(ino8, A[2], K, 3)
    doomed = {}
    for _, idx in ipairs(chunk_indexes(K[2], 0, known['0'])) do
      local key = known[idx]
      if not key then retry('the chunks of inode ' .. dec(ino8) .. ' changed') end
      doomed[#doomed + 1] = key
    end
  end
  -- Writes.
  if doomed then
    for _, key in ipairs(doomed) do redis.call('DEL', key) end
    redis.call('DEL', K[2])
  end
  redis.call('HDEL', S.pf, ino8)
  return { 'ok' }
end

-- compact_chunk: replace the slice list of a chunk of a regular file if and only if it is
-- exactly the list the client read (`expect`), recording every slice ID of `expect` (not 0)
-- that `slices` lacks as pending deletion (logic::data::compact_chunk). A list that changed
-- fails with WouldBlock and writes nothing. `error` is logic::check_slices's for the new list
-- ('' = valid); `expect` and `slices` are 24-byte slices each (empty = no slice).
-- KEYS: attr chunk chunk_index
-- FIXED: >c8I4 ino index
-- ARGS: error expect slices
-- Reply: {'ok'}
OPS.compact_chunk = function(K, A)
  local ino8, indx = struct.unpack('>c8I4', A[1])
  regular_file(K[1], ino8, 'compact_chunk')
  raise_arg(A[2])
  local expect, slices = A[3], A[4]
  local what = 'chunk ' .. indx .. ' of inode ' .. dec(ino8)
  local v = redis.call('GET', K[2]) or VER
  check_chunk(v, what)
  if string.sub(v, 2) ~= expect then
    fail('WouldBlock', what .. ' changed since it was read (' .. ((#v - 1) / 24) .. ' slices, '
      .. (#expect / 24) .. ' expected)')
  end
  -- The IDs dropped (logic::dropped_slices): once each, with the size of the first.
  local kept = {}
  for o = 1, #slices, 24 do kept[string.sub(slices, o + 4, o + 11)] = true end
  local dropped = {}
  for o = 1, #expect, 24 do
    local id8 = string.sub(expect, o + 4, o + 11)
    if id8 ~= ZERO8 and not kept[id8] then
      kept[id8] = true
      dropped[#dropped + 1] = { id8, string.sub(expect, o + 12, o + 15) }
    end
  end
  if indx ~= 0 then check_type(K[3], 'zset') end
  if #dropped > 0 then check_type(S.ps, 'hash') end
  -- Writes.
  if slices == '' then
    redis.call('DEL', K[2])
    unindex_chunk(K[3], indx)
  else
    redis.call('SET', K[2], VER .. slices)
    index_chunk(K[3], indx)
  end
  for _, d in ipairs(dropped) do
    redis.call('HSET', S.ps, d[1], d[2])
  end
  return { 'ok' }
end

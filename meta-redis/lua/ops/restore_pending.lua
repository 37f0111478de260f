-- restore_pending: write a pending-deletion record verbatim, for `load` (logic's
-- RestorePending): a deleted file with its chunks, or a dropped slice. AlreadyExists when
-- the file's inode is live.
-- KEYS: attr chunk_index chunk...
-- FIXED: >Bc8 file id
-- ARGS: value chunk...
-- file: 1 for a file (id = inode, value = length8), 0 for a slice (id = slice ID, value =
-- size4). Per chunk: u32 index .. slices (24 bytes each; none = delete the chunk).
-- Reply: {'ok'}
OPS.restore_pending = function(K, A)
  local file, id8 = struct.unpack('>Bc8', A[1])
  if file == 1 and raw_attr(K[1]) then
    fail('AlreadyExists', 'inode ' .. dec(id8) .. ' is live; it cannot be pending deletion')
  end
  if #A >= 3 then check_type(K[2], 'zset') end
  check_type(file == 1 and S.pf or S.ps, 'hash')
  -- Writes.
  for c = 3, #A do
    put_chunk(K[c], K[2], A[c])
  end
  if file == 1 then
    redis.call('HSET', S.pf, id8, A[2])
  else
    redis.call('HSET', S.ps, id8, A[2])
  end
  return { 'ok' }
end

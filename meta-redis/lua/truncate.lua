-- truncate: set a regular file's length, trimming and dropping slices past the end and
-- recording dropped slices as pending deletion (logic's Truncate / truncate_to). The chunks
-- at or past the cut were listed beforehand (ARGV[10..], keys KEYS[7..]); a chunk outside
-- that list asks for a retry.
-- KEYS: 1 token, 2 attr, 3 chunk index, 4 pending slices, 5 limits, 6 usedSpace,
--       7 totalInodes, 8.. chunk keys
-- ARGV: 3 ino8, 4 length8, 5 time12, 6 error kind ('' = none), 7 error message, 8 cut chunk
--       index, 9 cut offset in that chunk, 10 number of chunk keys m, 11..10+m chunk indexes
-- Reply: {'ok', attr}
return run_op(function()
  local ino8, time = ARGV[3], ARGV[5]
  local a = regular_file(KEYS[2], ino8, 'truncate')
  local chunk_keys = {}
  for i = 1, tonumber(ARGV[10]) do chunk_keys[ARGV[10 + i]] = KEYS[7 + i] end
  local t = { a = a, ino = ino8, length = ARGV[4], errkind = ARGV[6], errmsg = ARGV[7],
    cut_indx = tonumber(ARGV[8]), cut = tonumber(ARGV[9]), kindex = KEYS[3], kps = KEYS[4],
    klimits = KEYS[5], kused = KEYS[6], ktotal = KEYS[7], chunk_keys = chunk_keys }
  local plan = truncate_check(t)
  -- Writes.
  truncate_apply(t, plan, time)
  local av = enc_attr(a)
  redis.call('SET', KEYS[2], av)
  return { 'ok', av }
end)

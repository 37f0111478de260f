-- write: append a slice to a chunk of a regular file, extending its length (logic::write).
-- KEYS: 1 token, 2 attr, 3 chunk, 4 chunk index, 5 limits, 6 usedSpace, 7 totalInodes
-- ARGV: 3 ino8, 4 chunk index, 5 slice (24 bytes), 6 end offset in the file (u64 BE),
--       7 time12, 8 error kind of an invalid slice ('' = valid), 9 its message
-- Reply: {'ok', attr}
return run_op(function()
  local ino8, indx, time = ARGV[3], ARGV[4], ARGV[7]
  local a = regular_file(KEYS[2], ino8, 'write')
  if ARGV[8] ~= '' then fail(ARGV[8], ARGV[9]) end
  local new_len = a.length
  if bytes_lt(new_len, ARGV[6]) then new_len = ARGV[6] end
  local delta = align(new_len) - align(a.length)
  check_quota(KEYS[5], KEYS[6], KEYS[7], delta, 0)
  local size = redis.call('STRLEN', KEYS[3])
  -- The stored chunk must decode (as meta_core::kv's append_slice checks); only its first
  -- byte and its length are needed for that.
  if size > 0 and (redis.call('GETRANGE', KEYS[3], 0, 0) ~= VER or (size - 1) % 24 ~= 0) then
    fail('Corrupted', 'chunk ' .. indx .. ' of inode ' .. dec(ino8) .. ': undecodable (' .. size .. ' bytes)')
  end
  if delta ~= 0 then counter(KEYS[6], 'usedSpace') end
  -- Writes.
  if size > 0 then
    redis.call('APPEND', KEYS[3], ARGV[5])
  else
    redis.call('SET', KEYS[3], VER .. ARGV[5])
  end
  redis.call('ZADD', KEYS[4], tonumber(indx), indx)
  a.length = new_len
  a.mtime = time
  a.ctime = time
  local av = enc_attr(a)
  redis.call('SET', KEYS[2], av)
  if delta ~= 0 then redis.call('INCRBY', KEYS[6], num(delta)) end
  return { 'ok', av }
end)

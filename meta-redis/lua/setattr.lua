-- setattr: chmod, chown, utimens and truncate-through-setattr (logic::setattr). With the SIZE
-- bit, the chunks at or past the cut were listed by the client beforehand (ARGV[17..], keys
-- KEYS[7..]); a chunk outside that list asks for a retry.
-- KEYS: 1 token, 2 attr, 3 chunk index, 4 pending slices, 5 limits, 6 usedSpace,
--       7 totalInodes, 8.. chunk keys
-- ARGV: 3 ino8, 4 mask, 5 mode, 6 uid4, 7 gid4, 8 atime12, 9 mtime12, 10 size8, 11 time12,
--       12 size error kind ('' = none), 13 size error message, 14 cut chunk index,
--       15 cut offset in that chunk, 16 number of chunk keys m, 17..16+m chunk indexes
-- Reply: {'ok', attr}
return run_op(function()
  local ino8, mask, time = ARGV[3], tonumber(ARGV[4]), ARGV[11]
  local function has(bitv) return bit.band(mask, bitv) ~= 0 end
  local a = existing_attr(KEYS[2], ino8)
  local t, plan
  if has(128) then
    if a.typ == T_DIR then fail('IsADirectory', 'truncate of directory ' .. dec(ino8)) end
    if a.typ ~= T_REG then fail('InvalidArgument', 'truncate of non-regular inode ' .. dec(ino8)) end
    local chunk_keys = {}
    for i = 1, tonumber(ARGV[16]) do chunk_keys[ARGV[16 + i]] = KEYS[7 + i] end
    t = { a = a, ino = ino8, length = ARGV[10], errkind = ARGV[12], errmsg = ARGV[13],
      cut_indx = tonumber(ARGV[14]), cut = tonumber(ARGV[15]), kindex = KEYS[3], kps = KEYS[4],
      klimits = KEYS[5], kused = KEYS[6], ktotal = KEYS[7], chunk_keys = chunk_keys }
    plan = truncate_check(t)
  end
  -- Writes.
  if plan then truncate_apply(t, plan, time) end
  if has(1) then a.mode = bit.band(tonumber(ARGV[5]), 4095) end
  if has(2) then a.uid = ARGV[6] end
  if has(4) then a.gid = ARGV[7] end
  if has(8) then a.atime = ARGV[8] end
  if has(32) then a.atime = time end
  if has(16) then a.mtime = ARGV[9] end
  if has(64) then a.mtime = time end
  a.ctime = time
  local av = enc_attr(a)
  redis.call('SET', KEYS[2], av)
  return { 'ok', av }
end)

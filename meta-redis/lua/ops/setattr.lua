-- setattr: chmod, chown, utimens and truncate-through-setattr (logic::data::setattr). With
-- the SIZE bit (128) the chunks at or past the cut are rewritten: listed by the client
-- beforehand (`chunks`: u32 indexes, keys chunk...; a chunk outside that list asks for a
-- retry) or, without `chunks`, found here. `error` is the length error of
-- logic::check_length for the new size ('' = none). The permission rules and the mode the
-- inode gets are perm::check_setattr's (perm_check_setattr).
-- The caller: caller_uid, caller_gid and `groups` (supplementary groups, 4 bytes each).
-- KEYS: attr chunk_index [chunk...]
-- FIXED: >c8BHc4c4c12c12c8c12I4I4c4c4 ino mask mode uid gid atime mtime size time cut_index cut_offset caller_uid caller_gid
-- ARGS: error groups [chunks]
-- Reply: {'ok', attr}
OPS.setattr = function(K, A)
  local ino8, mask, mode, uid, gid, atime, mtime, size, time, cut_indx, cut, cuid, cgid =
    struct.unpack('>c8BHc4c4c12c12c8c12I4I4c4c4', A[1])
  local function has(bitv) return bit.band(mask, bitv) ~= 0 end
  local c = perm_caller(cuid, cgid, A[3])
  local a = existing_attr(K[1], ino8)
  if has(128) then
    if a.typ == T_DIR then fail('IsADirectory', 'truncate of directory ' .. dec(ino8)) end
    if a.typ ~= T_REG then fail('InvalidArgument', 'truncate of non-regular inode ' .. dec(ino8)) end
  end
  local new_mode = perm_check_setattr(a, ino8, c, mask, mode, uid, gid)
  local t, plan
  if has(128) then
    raise_arg(A[2])
    t = { a = a, ino = ino8, length = size, cut_indx = cut_indx, cut = cut, kindex = K[2],
      chunk_keys = chunk_keys(ino8, A[4], K, 3) }
    plan = truncate_check(t)
  end
  -- Writes.
  if plan then truncate_apply(t, plan, time) end
  a.mode = new_mode
  if has(2) then a.uid = uid end
  if has(4) then a.gid = gid end
  if has(8) then a.atime = atime end
  if has(32) then a.atime = time end
  if has(16) then a.mtime = mtime end
  if has(64) then a.mtime = time end
  a.ctime = time
  return { 'ok', put_attr(K[1], a) }
end

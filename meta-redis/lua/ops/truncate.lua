-- truncate: set a regular file's length, trimming and dropping slices past the end and
-- recording dropped slices as pending deletion (logic::data::truncate_to). The chunks at or
-- past the cut are listed by the client (`chunks`: u32 indexes, keys chunk...; a chunk
-- outside that list asks for a retry) or, without `chunks`, found here.
-- `error`: logic::check_length's ('' = none). The permission rules are those of a setattr of
-- the size alone (perm_check_setattr, mask SIZE): write permission (EACCES), and a caller
-- other than root clears setuid/setgid.
-- The caller: caller_uid, caller_gid and `groups` (supplementary groups, 4 bytes each).
-- KEYS: attr chunk_index [chunk...]
-- FIXED: >c8c8c12I4I4c4c4 ino length time cut_index cut_offset caller_uid caller_gid
-- ARGS: error groups [chunks]
-- Reply: {'ok', attr}
OPS.truncate = function(K, A)
  local ino8, length, time, cut_indx, cut, cuid, cgid = struct.unpack('>c8c8c12I4I4c4c4', A[1])
  local c = perm_caller(cuid, cgid, A[3])
  local a = regular_file(K[1], ino8, 'truncate')
  local mode = perm_check_setattr(a, ino8, c, 128, 0, nil, nil)
  raise_arg(A[2])
  local t = { a = a, ino = ino8, length = length, cut_indx = cut_indx, cut = cut,
    kindex = K[2], chunk_keys = chunk_keys(ino8, A[4], K, 3) }
  local plan = truncate_check(t)
  -- Writes.
  a.mode = mode
  truncate_apply(t, plan, time)
  return { 'ok', put_attr(K[1], a) }
end

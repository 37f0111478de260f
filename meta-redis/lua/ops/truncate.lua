-- truncate: set a regular file's length, trimming and dropping slices past the end and
-- recording dropped slices as pending deletion (logic::data::truncate_to). The chunks at or
-- past the cut are listed by the client (`chunks`: u32 indexes, keys chunk...; a chunk
-- outside that list asks for a retry) or, without `chunks`, found here.
-- `error`: logic::check_length's ('' = none).
-- KEYS: attr chunk_index [chunk...]
-- FIXED: >c8c8c12I4I4 ino length time cut_index cut_offset
-- ARGS: error [chunks]
-- Reply: {'ok', attr}
OPS.truncate = function(K, A)
  local ino8, length, time, cut_indx, cut = struct.unpack('>c8c8c12I4I4', A[1])
  local a = regular_file(K[1], ino8, 'truncate')
  raise_arg(A[2])
  local t = { a = a, ino = ino8, length = length, cut_indx = cut_indx, cut = cut,
    kindex = K[2], chunk_keys = chunk_keys(ino8, A[3], K, 3) }
  local plan = truncate_check(t)
  -- Writes.
  truncate_apply(t, plan, time)
  return { 'ok', put_attr(K[1], a) }
end

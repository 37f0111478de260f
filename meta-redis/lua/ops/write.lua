-- write: append a slice to a chunk of a regular file, extending its length
-- (logic::data::write). `error` is the slice error of logic::check_write ('' = valid). No
-- permission is checked, but a caller other than root clears setuid/setgid
-- (perm::mode_after_write).
-- The caller: caller_uid, caller_gid and `groups` (supplementary groups, 4 bytes each).
-- KEYS: attr chunk chunk_index
-- FIXED: >c8I4c24c8c12c4c4 ino index slice end time caller_uid caller_gid
-- ARGS: error groups
-- Reply: {'ok', attr}
OPS.write = function(K, A)
  local ino8, indx, slice, send, time, cuid, cgid = struct.unpack('>c8I4c24c8c12c4c4', A[1])
  local a = regular_file(K[1], ino8, 'write')
  local mode = perm_mode_after_write(a, perm_caller(cuid, cgid, A[3]))
  raise_arg(A[2])
  local new_len = a.length
  if u64_lt(new_len, send) then new_len = send end
  local delta = align(new_len) - align(a.length)
  check_quota(delta, 0)
  local append = append_slice(K[2], K[3], indx, slice, ino8)
  if delta ~= 0 then counter(S.used, 'usedSpace') end
  if new_len ~= a.length then
    stat_check_attr(ino8, a)
    if quota_on() then restat_check(ino8, a, charged_as(a, new_len), true) end
  end
  -- Writes.
  append()
  local before = stat_snap(a)
  a.mode = mode
  a.length = new_len
  a.mtime = time
  a.ctime = time
  local av = put_attr(K[1], a)
  if delta ~= 0 then add_counter(S.used, delta) end
  restat(ino8, before, a)
  return { 'ok', av }
end

-- remove_quota: remove directory `dir`'s quota (logic::quota::remove_quota); ENOENT when it
-- has none.
-- KEYS:
-- FIXED: >c8 dir
-- ARGS:
-- Reply: {'ok'}
OPS.remove_quota = function(K, A)
  local dir8 = struct.unpack('>c8', A[1])
  if not quota_get(dir8) then fail('NotFound', 'directory ' .. dec(dir8) .. ' has no quota') end
  quota_stage(dir8, false, true)
  return { 'ok' }
end

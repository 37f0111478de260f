-- set_quota: set the limits of directory `dir`'s quota, creating it when the directory has
-- none (logic::quota::set_quota). A new quota's usage is the sum of the statistics of
-- `subtree` (8-byte inodes: every directory of dir's subtree, dir first, as the client
-- listed them), which quota::check_subtree verifies against the stored attributes (EAGAIN
-- when they changed since); an existing quota keeps its usage and `subtree` is ignored. The
-- attribute keys of the subtree's directories follow dir's (strict_keys), or are derived.
-- KEYS: attr [subtree_attr...]
-- FIXED: >c8c8c8 dir max_space max_inodes
-- ARGS: subtree
-- Reply: {'ok', quota record (40 bytes, QUOTA_REC)}

-- quota::check_subtree: `dirs` (ino8 each; attributes `attrs[i]`, nil when missing) must be
-- exactly the directories of dir8's subtree.
local function check_subtree(dir8, dirs, attrs)
  if dirs[1] ~= dir8 then
    fail('InvalidArgument', 'the subtree list of directory ' .. dec(dir8) .. ' must start with it')
  end
  local changed = 'the subtree of directory ' .. dec(dir8) .. ' changed'
  local children, seen = {}, {}
  for i, d in ipairs(dirs) do
    if seen[d] then
      fail('InvalidArgument', 'directory ' .. dec(d) .. ' is listed twice in the subtree of '
        .. dec(dir8))
    end
    seen[d] = true
    local a = attrs[i]
    if not a or a.typ ~= T_DIR or a.nlink < 2 then fail('WouldBlock', changed) end
    if i > 1 then children[a.parent] = (children[a.parent] or 0) + 1 end
  end
  for i, d in ipairs(dirs) do
    local n = children[d] or 0
    children[d] = nil
    if n ~= attrs[i].nlink - 2 then
      fail('WouldBlock', changed .. ' (directory ' .. dec(d) .. ' has other subdirectories)')
    end
  end
  if next(children) then fail('WouldBlock', changed .. ' (a listed directory moved out of it)') end
end

OPS.set_quota = function(K, A)
  local dir8, ms, mi = struct.unpack('>c8c8c8', A[1])
  -- (The limits as halves, as QUOTA_REC reads them: the same bytes once packed.)
  local msh, msl, mih, mil = struct.unpack('>i4I4i4I4', ms .. mi)
  local _, _, stats = limits()
  if not stats then
    fail('Unsupported',
      'directory quotas need directory statistics (the volume was formatted without them)')
  end
  live_dir_attr(K[1], dir8)
  local q = quota_get(dir8)
  local had = q and true
  if q then
    quota_halves(q)
    q = { q[1], q[2], q[3], q[4], q[5], q[6], msh, msl, mih, mil }
  elseif A[2] == '' then
    fail('WouldBlock', 'directory ' .. dec(dir8)
      .. ' has no quota yet: list its subtree\'s directories')
  else
    local dirs, attrs = {}, {}
    for i, r in ipairs(records(A[2], 0)) do
      dirs[i] = r[1]
      attrs[i] = get_attr(K[1 + i] or ikey('i', r[1]), r[1])
    end
    check_subtree(dir8, dirs, attrs)
    q = { 0, 0, 0, 0, 0, 0, msh, msl, mih, mil }
    for _, d in ipairs(dirs) do stat_add(q, stat_now(d), 0) end
  end
  quota_stage(dir8, q, had)
  return { 'ok', enc_quota(q) }
end

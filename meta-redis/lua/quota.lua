-- quota.lua: directory quotas (meta_core::quota): the record codec, the write-back
-- (`flush_quotas`), the chains of quotas above a directory and the charges an op checks.
-- After stats.lua.

-- A quota record ({prefix}quotas, crate::reply::quota_of): max_space and max_inodes (u64),
-- then the usage: inodes, length, space (i64); every field read as its signed high and
-- unsigned low 32-bit halves (STAT_REC's way: packing the halves back gives the same bytes,
-- so a u64 limit past 2^63 stays exact too). Decoded, a quota is the array { usage ih, il,
-- lh, ll, sh, sl, then max_space h, l, max_inodes h, l }: usage first, as `stat_add` takes
-- it. While every usage is below 2^52 in magnitude (always, in practice) it may be in the
-- fast form instead (`quota_fast`): q[16] true, the usage as three numbers in q[11]
-- (inodes), q[12] (length), q[13] (space), exact, and the limits as numbers in q[14]
-- (space) and q[15] (inodes) for comparing with them; q[1] .. q[6] are then stale.
-- `quota_halves` goes back; q[16] false: the usage is too large for the fast form.
local QUOTA_REC = '>i4I4i4I4i4I4i4I4i4I4'
-- The same with the usage as three i64 (exact as numbers below 2^53).
local QUOTA_REC8 = '>i4I4i4I4i8i8i8'

-- A limit (a u64 as stored: halves, the high one signed) as a number for comparing with a
-- usage below 2^52: none (0) and past i64::MAX (high half < 0) are above every usage; one
-- past 2^53 comes out rounded, but never below 2^53.
local function limit_num(h, l)
  if h < 0 or (h == 0 and l == 0) then return math.huge end
  return h * P32 + l
end

-- Quota `q` into the fast form when its usages allow; whether it is in it now.
local function quota_fast(q)
  if q[16] then return true end
  local i, l, sp = q[1] * P32 + q[2], q[3] * P32 + q[4], q[5] * P32 + q[6]
  if i * i + l * l + sp * sp >= P104 then
    q[16] = false
    return false
  end
  q[11], q[12], q[13], q[14], q[15], q[16] = i, l, sp, limit_num(q[7], q[8]),
    limit_num(q[9], q[10]), true
  return true
end

-- Quota `q` back from the fast form (the same usage as halves: `i64_norm` of a number below
-- 2^53 in magnitude is exact and never saturates).
local function quota_halves(q)
  if not q[16] then return end
  q[1], q[2] = i64_norm(0, q[11])
  q[3], q[4] = i64_norm(0, q[12])
  q[5], q[6] = i64_norm(0, q[13])
  q[16] = nil
end

local function enc_quota(q)
  if q[16] then return struct.pack(QUOTA_REC8, q[7], q[8], q[9], q[10], q[11], q[12], q[13]) end
  return struct.pack(QUOTA_REC, q[7], q[8], q[9], q[10], q[1], q[2], q[3], q[4], q[5], q[6])
end

-- Writes the quotas the batch changed (one HSET, one HDEL).
local function flush_quotas()
  local n = #QLIST
  if n == 0 then return end
  stats_claim()
  if n == 1 then
    -- (The common case: no table to build.)
    local d = QLIST[1]
    local q = QC[d]
    if q then
      redis.call('HSET', S.quotas, d, enc_quota(q))
    else
      redis.call('HDEL', S.quotas, d)
    end
    return
  end
  local set, del = {}, {}
  for _, d in ipairs(QLIST) do
    local q = QC[d]
    if q then
      set[#set + 1] = d
      set[#set + 1] = enc_quota(q)
    else
      del[#del + 1] = d
    end
  end
  for i = 1, #del, 510 do
    redis.call('HDEL', S.quotas, unpack(del, i, math.min(i + 509, #del)))
  end
  for i = 1, #set, 510 do
    redis.call('HSET', S.quotas, unpack(set, i, math.min(i + 509, #set)))
  end
end

-- Directory quotas (meta_core::quota) -------------------------------------------------------
--
-- One hash per volume (S.quotas): directory ino8 -> a 40-byte record (QUOTA_REC). The
-- quotas above a directory are found by walking its parents in the statistics records
-- (`dir_parent`), only on a volume that has quotas (`has_quotas`: one HLEN per call, none
-- while this library owns the volume: `stats_load`), so ops on a volume without any pay
-- nothing more. On a volume with at most QALL_MAX quotas the call reads the
-- whole hash once (HGETALL) instead of one HGET per directory it looks at, and it memoizes
-- each directory's chain of quotas (`quota_chain`), so an op whose directory an earlier op
-- (of the call, or of an earlier call while this library owns the volume) charged
-- does not walk again. An op checks its quota
-- changes in its check phase (`restat_check`, `check_uncharged_entry`, set_quota,
-- remove_quota): it stages the creation or removal of a quota, and changes a usage in place
-- with an undo log; batch.lua commits both when the op succeeds, else undoes them
-- (`quota_end`), and `flush_quotas` writes the changed records at the end of the call.

-- The most quotas a volume may have for a call to read its quotas hash whole: HGETALL costs
-- about two HGETs of one field, and a walk to the root looks at two directories or more.
local QALL_MAX = 2

-- An empty chain of quotas (shared: never changed).
local NOQ = {}

-- The number of quotas (QN) once per call: kept from the last call while this library owns
-- the volume's statistics and quotas (`stats_load`), else one HLEN.
local function quota_load()
  if DSON == nil then limits() end
  if DSON and OWNED == nil then stats_load() end
  if QN == nil then QN = redis.call('HLEN', S.quotas) end
end

-- TxnView::has_quotas: whether the volume has a quota, as the running op sees it.
local function has_quotas()
  if QN == nil then quota_load() end
  return QN + QND > 0
end

-- The stored record of directory `dir8`'s quota, or nil: from the hash read whole once per
-- call (when the volume has at most QALL_MAX quotas), else with one HGET.
local function quota_raw(dir8)
  if not QRAW then
    has_quotas()
    if QN > QALL_MAX then return redis.call('HGET', S.quotas, dir8) or nil end
    local all = redis.call('HGETALL', S.quotas)
    QRAW = {}
    for i = 1, #all, 2 do QRAW[all[i]] = all[i + 1] end
  end
  return QRAW[dir8]
end

-- TxnView::get_quota: directory `dir8`'s quota (see QUOTA_REC) or false (Corrupted:
-- undecodable), as the running op sees it.
local function quota_get(dir8)
  local q
  if QST then q = QST[dir8] end
  if q == nil then q = QC[dir8] end
  if q ~= nil then return q end
  local v = quota_raw(dir8)
  q = false
  if v then
    if #v ~= 40 then
      fail('Corrupted', 'quota of directory ' .. dec(dir8) .. ': undecodable record (' .. #v
        .. ' bytes)')
    end
    local msh, msl, mih, mil, i, l, sp = struct.unpack(QUOTA_REC8, v)
    if i * i + l * l + sp * sp < P104 then
      q = { 0, 0, 0, 0, 0, 0, msh, msl, mih, mil, i, l, sp, limit_num(msh, msl),
        limit_num(mih, mil), true }
    else
      local _, _, _, _, ih, il, lh, ll, sh, sl = struct.unpack(QUOTA_REC, v)
      q = { ih, il, lh, ll, sh, sl, msh, msl, mih, mil }
    end
  end
  QC[dir8], QCN = q, QCN + 1
  return q
end

-- TxnView::put_quota, staged: directory `dir8`'s quota becomes `q` (false: removed) when
-- the op succeeds. `had`: whether it has one now. Creating or removing a quota forgets the
-- memoized chains (`quota_chain`).
local function quota_stage(dir8, q, had)
  has_quotas()
  QST = QST or {}
  QST[dir8] = q
  if had and not q then
    QND = QND - 1
  elseif q and not had then
    QND = QND + 1
  else
    return
  end
  QSTX = true
  chains_reset()
end

-- Removes directory `dir8`'s quota, if any, without decoding it (delete_inode: a directory
-- goes with its quota). The caller made sure the volume has quotas (`has_quotas`).
local function quota_drop(dir8)
  local q
  if QST then q = QST[dir8] end
  if q == nil then q = QC[dir8] end
  if q == nil then
    if QRAW or QN <= QALL_MAX then
      q = quota_raw(dir8) ~= nil
    else
      q = redis.call('HEXISTS', S.quotas, dir8) == 1
    end
    if not q then QC[dir8], QCN = false, QCN + 1 end
  end
  if q then quota_stage(dir8, false, true) end
end

-- An undo log entry is nine slots: the quota q, its directory when the change made it the
-- call's to write (else false), its form (q[16] as it was), then its old usage: three
-- numbers in the fast form, else six halves. This puts the usage and form back.
local function quota_put_back(q, f, u1, u2, u3, u4, u5, u6)
  if f then
    q[11], q[12], q[13] = u1, u2, u3
  else
    q[1], q[2], q[3], q[4], q[5], q[6] = u1, u2, u3, u4, u5, u6
  end
  q[16] = f
end

-- After an op that failed having changed usages (batch.lua; one that succeeded just
-- empties the log): the usages go back, newest first, and the quotas it was the first of
-- the call to change are no longer to be written.
local function quota_undo()
  for i = 9 * QUN - 8, 1, -9 do
    quota_put_back(QU[i], QU[i + 2], QU[i + 3], QU[i + 4], QU[i + 5], QU[i + 6], QU[i + 7],
      QU[i + 8])
    local d = QU[i + 1]
    if d then
      QDIRTY[d] = nil
      QLIST[#QLIST] = nil
    end
  end
  QUN = 0
end

-- After each op that staged quotas (batch.lua): they become the batch's when it succeeded;
-- else they are dropped (with the memoized chains when they created or removed one).
local function quota_end(ok)
  if ok then
    for d, q in pairs(QST) do
      QC[d] = q
      if not QDIRTY[d] then
        QDIRTY[d] = true
        QLIST[#QLIST + 1] = d
      end
    end
    QN = QN + QND
  elseif QSTX then
    chains_reset()
  end
  QST, QND, QSTX = nil, 0, false
end

-- The parent of directory `dir8` (nil: unknown), from its statistics record, or the batch's
-- change of it. A record written before quotas names none: then its attributes do (and the
-- record gets it at the end of the call), unless keys are strict (Corrupted).
local function dir_parent(dir8)
  local e = DS[dir8]
  if e and e[7] then return e[7] end
  stat_check(dir8)
  local v = DSV[dir8]
  if v and #v == 32 then return string.sub(v, 25) end
  if S.strict then
    fail('Corrupted', 'directory ' .. dec(dir8) .. ': its statistics record names no parent '
      .. '(written before directory quotas); an op on it without strict_keys records it')
  end
  local a = get_attr(ikey('i', dir8), dir8)
  if not a then return nil end
  if a.typ == T_DIR and a.nlink > 0 then stat_parent(dir8, a.parent) end
  return a.parent
end

local function too_deep(dir8)
  fail('Corrupted', 'directory ' .. dec(dir8) .. ' is nested deeper than ' .. MAX_DEPTH
    .. ' levels (a parent loop?)')
end

-- quota::chain: the directories with a quota among `dir8` and its ancestors, nearest first
-- (a table the caller must not change). Memoized for every directory of a walk that
-- reaches the root (QCH, with its depth in QDEP), so a walk stops at the first memoized
-- directory: a directory without a quota shares its parent's chain. The memo holds while
-- no quota is created or removed (`quota_stage`, `quota_end`) and no memoized directory's
-- parent changes (`stat_parent`, `stat_reset`): nothing else changes what the walk reads (a
-- quota's usage is not part of a chain). Across calls it holds while this library owns the
-- volume (`stats_load`): nothing else changed a parent or a quota. The walk checks what
-- quota::chain checks in the same order (a quota record that does not decode, a missing
-- parent, more than MAX_DEPTH directories on the way, memoized ones included). Callers test
-- QCH first: `QCH[d] or quota_chain(d)`.
local function quota_chain(dir8)
  local base = QCH[dir8]
  if base then return base end
  -- The common case first, without the general walk's bookkeeping (and only when nothing
  -- there can fail): no quota of its own, its parent memoized.
  local q
  if QST then q = QST[dir8] end
  if q == nil then q = QC[dir8] end
  if q == nil and QRAW and QRAW[dir8] == nil then q = false end
  if q == false and dir8 ~= ROOT8 then
    local p
    local e = DS[dir8]
    if e and e[7] then
      p = e[7]
    else
      local v = DSV[dir8]
      if v and #v == 32 then p = string.sub(v, 25) end
    end
    base = p and QCH[p]
    if base then
      local depth = QDEP[p] + 1
      if depth <= MAX_DEPTH then
        QCH[dir8], QDEP[dir8], QCHN = base, depth, QCHN + 1
        return base
      end
    end
  end
  -- Up to the root or to a memoized directory: QWAY gets each directory and its quota.
  local n, cur, depth = 0, dir8, 0
  while true do
    if n >= MAX_DEPTH then too_deep(dir8) end
    n = n + 1
    -- (quota_get and dir_parent, their cached cases inline.)
    local q
    if QST then q = QST[cur] end
    if q == nil then q = QC[cur] end
    if q == nil then
      if QRAW and QRAW[cur] == nil then q = false else q = quota_get(cur) end
    end
    QWAY[2 * n - 1], QWAY[2 * n] = cur, q
    if cur == ROOT8 then
      base = NOQ
      break
    end
    local p
    local e = DS[cur]
    if e and e[7] then
      p = e[7]
    else
      local v = DSV[cur]
      if v and #v == 32 then p = string.sub(v, 25) else p = dir_parent(cur) end
    end
    if not p or p == ZERO8 then
      fail('Corrupted', 'directory ' .. dec(cur) .. ' has no parent on the way from '
        .. dec(dir8) .. ' to the root')
    end
    cur = p
    base = QCH[cur]
    if base then
      depth = QDEP[cur]
      break
    end
  end
  if n + depth > MAX_DEPTH then too_deep(dir8) end
  -- Down again: each directory's chain is its parent's, with itself first when it has a
  -- quota.
  for i = n, 1, -1 do
    local d = QWAY[2 * i - 1]
    if QWAY[2 * i] then
      local c = { d }
      for j = 1, #base do c[j + 1] = base[j] end
      base = c
    end
    depth = depth + 1
    QCH[d], QDEP[d] = base, depth
  end
  QCHN = QCHN + n
  return base
end

-- Quota::check's error: adding h, l to the usage uh, ul of directory `dir8`'s quota would
-- pass its limit mh, ml.
local function quota_exceeded(dir8, mh, ml, h, l, uh, ul, what)
  fail('QuotaExceeded', 'quota of directory ' .. dec(dir8) .. ': ' .. i64_dec(h, l) .. what
    .. dec(struct.pack('>i4I4', mh, ml)) .. ' (' .. i64_dec(uh, ul) .. ' used)')
end

-- The end of quota::on_recharge for the quota of directory `qd` (in a chain: it has one):
-- the net change ih .. sl (halves, as i64_norm gives them), when not zero, is checked when
-- it grows (Quota::check: space, then inodes; a limit of 0 is none; the limit is a u64
-- stored as i64 halves, so one past i64::MAX (high half < 0) is above every usage; else
-- compared as i64 with the new usage), then becomes the usage: in place, the op's undo log
-- (the quota, its directory when this made it the call's to write, its form and old usage:
-- see `quota_put_back`) keeping the old one
-- until batch.lua knows whether the op succeeded (`quota_undo`). The new usage is
-- DirStat's saturating addition (i64_norm, called only when a half overflows). The quota
-- leaves the fast form (`quota_addf` is for that).
local function quota_add(qd, ih, il, lh, ll, sh, sl)
  if ih == 0 and il == 0 and lh == 0 and ll == 0 and sh == 0 and sl == 0 then return end
  local q
  if QST then q = QST[qd] end
  if q == nil then q = QC[qd] end
  if not q then q = quota_get(qd) end
  if q[16] then quota_halves(q) end
  local f, u1, u2, u3, u4, u5, u6 = q[16], q[1], q[2], q[3], q[4], q[5], q[6]
  local a1, a2 = u1 + ih, u2 + il
  if a2 < 0 or a2 >= P32 or a1 >= P31 or a1 < -P31 then a1, a2 = i64_norm(a1, a2) end
  local b1, b2 = u3, u4
  if lh ~= 0 or ll ~= 0 then
    b1, b2 = u3 + lh, u4 + ll
    if b2 < 0 or b2 >= P32 or b1 >= P31 or b1 < -P31 then b1, b2 = i64_norm(b1, b2) end
  end
  local c1, c2 = u5 + sh, u6 + sl
  if c2 < 0 or c2 >= P32 or c1 >= P31 or c1 < -P31 then c1, c2 = i64_norm(c1, c2) end
  if sh >= 0 and (sh ~= 0 or sl ~= 0) then
    local m1, m2 = q[7], q[8]
    if m1 >= 0 and (m1 ~= 0 or m2 ~= 0) and (c1 > m1 or (c1 == m1 and c2 > m2)) then
      quota_exceeded(qd, m1, m2, sh, sl, u5, u6, ' bytes of space would pass its limit of ')
    end
  end
  if ih >= 0 and (ih ~= 0 or il ~= 0) then
    local m1, m2 = q[9], q[10]
    if m1 >= 0 and (m1 ~= 0 or m2 ~= 0) and (a1 > m1 or (a1 == m1 and a2 > m2)) then
      quota_exceeded(qd, m1, m2, ih, il, u1, u2, ' more inodes would pass its limit of ')
    end
  end
  local first = false
  if not QDIRTY[qd] then
    QDIRTY[qd] = true
    QLIST[#QLIST + 1] = qd
    first = qd
  end
  local n = QUN
  if n == 0 then
    QU[1], QU[2], QU[3], QU[4], QU[5], QU[6], QU[7], QU[8], QU[9] = q, first, f, u1, u2, u3,
      u4, u5, u6
  else
    n = 9 * n
    QU[n + 1], QU[n + 2], QU[n + 3], QU[n + 4], QU[n + 5], QU[n + 6], QU[n + 7], QU[n + 8],
      QU[n + 9] = q, first, f, u1, u2, u3, u4, u5, u6
  end
  QUN = QUN + 1
  q[1], q[2], q[5], q[6] = a1, a2, c1, c2
  if lh ~= 0 or ll ~= 0 then q[3], q[4] = b1, b2 end
  -- (Perhaps small enough for the fast form again: `quota_fast` tells.)
  q[16] = nil
end

-- `quota_add` of a change of di inodes, dl bytes of length and ds of space (whole numbers,
-- each below 2^52 in magnitude) in the fast form: the usages as numbers, exact while the
-- new ones stay below 2^52 in magnitude (else, and for a quota whose usage is too large
-- for it, `quota_add` with the change as halves). The same checks in the same order, the
-- same undo log, unless `nolog`: nothing after this change can make the op fail, so it is
-- never undone.
local function quota_addf(qd, di, dl, ds, nolog)
  local q
  if QST then q = QST[qd] end
  if q == nil then q = QC[qd] end
  if not q then q = quota_get(qd) end
  local i, l, sp, u1, u2, u3
  if q[16] or quota_fast(q) then
    u1, u2, u3 = q[11], q[12], q[13]
    i, l, sp = u1 + di, u2 + dl, u3 + ds
  end
  if not i or i * i + l * l + sp * sp >= P104 then
    local ih, il = i64_norm(0, di)
    local lh, ll = i64_norm(0, dl)
    local sh, sl = i64_norm(0, ds)
    return quota_add(qd, ih, il, lh, ll, sh, sl)
  end
  if ds > 0 and sp > q[14] then
    local mh, ml, h, lo = q[7], q[8], i64_norm(0, ds)
    local uh, ul = i64_norm(0, u3)
    quota_exceeded(qd, mh, ml, h, lo, uh, ul, ' bytes of space would pass its limit of ')
  end
  if di > 0 and i > q[15] then
    local mh, ml, h, lo = q[9], q[10], i64_norm(0, di)
    local uh, ul = i64_norm(0, u1)
    quota_exceeded(qd, mh, ml, h, lo, uh, ul, ' more inodes would pass its limit of ')
  end
  local first = false
  if not QDIRTY[qd] then
    QDIRTY[qd] = true
    QLIST[#QLIST + 1] = qd
    first = qd
  end
  if nolog then
    q[11], q[12], q[13] = i, l, sp
    return
  end
  local n = QUN
  if n == 0 then
    QU[1], QU[2], QU[3], QU[4], QU[5], QU[6] = q, first, true, u1, u2, u3
  else
    n = 9 * n
    QU[n + 1], QU[n + 2], QU[n + 3], QU[n + 4], QU[n + 5], QU[n + 6] = q, first, true, u1,
      u2, u3
  end
  QUN = QUN + 1
  q[11], q[12], q[13] = i, l, sp
end

-- quota::moving_dir: EXDEV when directory `ino8` (attributes `after`), moving out of
-- directory `from`, is not empty and the quotas above its old and new places differ.
local function moving_dir(ino8, after, from)
  if after.nlink <= 2 then
    local s = stat_now(ino8)
    if s[1] == 0 and s[2] == 0 and s[3] == 0 and s[4] == 0 and s[5] == 0 and s[6] == 0 then
      return
    end
  end
  local old, new = quota_chain(from), quota_chain(after.parent)
  local same = #old == #new
  for i = 1, #old do same = same and old[i] == new[i] end
  if not same then
    fail('CrossDevice', 'directory ' .. dec(ino8) .. ' is not empty and would move across a '
      .. "directory quota's boundary")
  end
end

-- Whether an op must mirror checks::restat's quota side (`restat_check`): the volume keeps
-- statistics and has quotas. Check phase (after the op's stat_check).
local function quota_on()
  if DSON == nil then limits() end
  return DSON and has_quotas()
end

-- Whether directory `qd` is in chain `c`.
local function in_chain(c, qd)
  for i = 1, #c do
    if c[i] == qd then return true end
  end
  return false
end

-- checks::restat's quota side, in the check phase, with the attributes the write phase's
-- `restat` gets (the charge's fields: typ, nlink, length, parent): quota::on_recharge when
-- stats::recharge's change is not empty. The changes (at most two: the old directory loses
-- the old charge, the new one gains the new charge; one directory: the difference) are not
-- built as tables: each quota on the changed directories' ways to the root gets the net
-- change in on_recharge's order (the first way's quotas, then the second's not on the
-- first), added with DirStat's saturation as on_recharge adds them up. `last`: the op's
-- last check, after which it cannot fail (only its writes follow), so the last quota it
-- changes needs no undo log, and an inode that appears or goes may get the write phase's
-- `restat` here: returns true when it did (the op then does not call `restat`).
local function restat_check(ino8, before, after, last)
  if QN == 0 and QND == 0 then return end -- (known: no quota)
  -- (quota_on, inline.)
  if DSON == nil then limits() end
  if not DSON then return end
  if QN == nil then quota_load() end
  if QN + QND <= 0 then return end
  if before == nil or after == nil then
    -- The common case first: an inode appears or goes (k = 1 or -1 times its charge), its
    -- length below 2^52 (`charge` inline, as numbers), in the fast form (`quota_addf`).
    local a, k = after, 1
    if not a then a, k = before, -1 end
    if not a then return end
    local p = a.parent
    if p == ZERO8 or a.nlink == 0 or ino8 == ROOT8 then return end
    local len, l, sp = a.length, 0, 4096
    if len == LEN4K then
      l = 4096
    elseif len ~= ZERO8 then
      local hi, lo = struct.unpack('>I4I4', len)
      l = hi < 1048576 and hi * P32 + lo
      if l and a.typ == T_REG then sp = math.ceil(l / 4096) * 4096 end
    end
    if l then
      local c = QCH[p] or quota_chain(p)
      local n = #c
      for i = 1, n do quota_addf(c[i], k, k * l, k * sp, last and i == n) end
      if last then
        -- `restat`'s change too (the length whole in the low half's place).
        local t = DS[p] or stat_entry(p)
        t[1], t[3], t[5] = t[1] + k, t[3] + k * l, t[5] + k * sp
        return true
      end
      return
    end
  end
  local d, dh, dl, dsh, dsl, e, eh, el, esh, esl
  if before then d, dh, dl, dsh, dsl = charge(ino8, before) end
  if after then e, eh, el, esh, esl = charge(ino8, after) end
  if d and d == e and dh < 1048576 and eh < 1048576 then
    -- One directory, lengths below 2^52: the change as numbers, in the fast form.
    local xl, xs = (eh - dh) * P32 + el - dl, (esh - dsh) * P32 + esl - dsl
    if xl == 0 and xs == 0 then return end
    local c = QCH[d] or quota_chain(d)
    local n = #c
    for i = 1, n do quota_addf(c[i], 0, xl, xs, last and i == n) end
    return
  end
  if d and d == e then
    -- One directory (no EXDEV boundary: `after` is charged to where `before` was). (Here and
    -- below i64_norm is called only when it would change something.)
    local lh, ll = eh - dh, el - dl
    if ll < 0 or ll >= P32 or lh >= P31 or lh < -P31 then lh, ll = i64_norm(lh, ll) end
    local sh, sl = esh - dsh, esl - dsl
    if sl < 0 or sl >= P32 or sh >= P31 or sh < -P31 then sh, sl = i64_norm(sh, sl) end
    if lh == 0 and ll == 0 and sh == 0 and sl == 0 then return end
    local c = QCH[d] or quota_chain(d)
    for i = 1, #c do quota_add(c[i], 0, 0, lh, ll, sh, sl) end
    return
  end
  if not d and not e then return end
  -- quota::on_recharge's EXDEV boundaries.
  if d and after then
    if after.nlink > 0 and after.parent == ZERO8 and #(QCH[d] or quota_chain(d)) > 0 then
      fail('CrossDevice', 'inode ' .. dec(ino8) .. ' would be named in several directories '
        .. 'and leave the quota over directory ' .. dec(d))
    end
    if after.typ == T_DIR and after.parent ~= d and after.parent ~= ZERO8 then
      moving_dir(ino8, after, d)
    end
  end
  local c1, c2 = NOQ, NOQ
  local lh, ll, sh, sl = 0, 0, 0, 0
  if d then
    c1 = QCH[d] or quota_chain(d)
    -- The old directory's change: minus the old charge (one inode: halves -1, 2^32 - 1).
    lh, ll, sh, sl = -dh, -dl, -dsh, -dsl
    if ll < 0 or lh < -P31 then lh, ll = i64_norm(lh, ll) end
    if sl < 0 or sh < -P31 then sh, sl = i64_norm(sh, sl) end
  end
  if e then
    c2 = QCH[e] or quota_chain(e)
    -- The new directory's change: the new charge (space as halves: esl may be 2^32).
    if esl >= P32 or esh >= P31 then esh, esl = i64_norm(esh, esl) end
  end
  for i = 1, #c1 do
    local qd = c1[i]
    if e and in_chain(c2, qd) then
      -- Both changes (the inodes: -1 + 1 = 0).
      local xlh, xll = i64_norm(lh + eh, ll + el)
      local xsh, xsl = i64_norm(sh + esh, sl + esl)
      quota_add(qd, 0, 0, xlh, xll, xsh, xsl)
    else
      quota_add(qd, -1, P32 - 1, lh, ll, sh, sl)
    end
  end
  if #c2 > 0 then
    local elh, ell = eh, el
    if eh >= P31 then elh, ell = i64_norm(eh, el) end
    for i = 1, #c2 do
      local qd = c2[i]
      if not (d and in_chain(c1, qd)) then quota_add(qd, 0, 1, elh, ell, esh, esl) end
    end
  end
end

-- quota::check_uncharged_entry: EXDEV when a link or rename names inode `ino8` (attributes
-- `a` after the op), charged to no directory because named in several (parent 0), in
-- directory `dir8` under a quota.
local function check_uncharged_entry(ino8, a, dir8)
  if a.nlink == 0 or a.parent ~= ZERO8 or a.typ == T_DIR or not quota_on() then return end
  local q = quota_chain(dir8)[1]
  if q then
    fail('CrossDevice', 'inode ' .. dec(ino8) .. ' is named in several directories and '
      .. 'cannot enter the quota over directory ' .. dec(q))
  end
end

-- stats.lua: directory statistics (meta_core::stats): 64-bit arithmetic on 32-bit halves, the
-- record codec, the batch's changes and their write-back (`flush_stats`). After perm.lua.

-- 2^31, 2^32 and 2^53 (beyond which a double no longer holds every integer).
local P31, P32, P52, P53 = 2147483648, 4294967296, 4503599627370496, 9007199254740992
local P106 = P53 * P53
-- 2^104: a sum of three squares below it means each |x| < 2^52 (x * x rounds to 2^104 or
-- more when |x| >= 2^52).
local P104 = P52 * P52

-- A directory's statistics record: three big-endian i64 (inodes, length, space), each read
-- as its signed high and unsigned low 32-bit halves, then (32 bytes) its parent directory's
-- 8-byte inode; a record written before directory quotas has 24 bytes (no parent).
local STAT_REC = '>i4I4i4I4i4I4'
-- The same as three i64 (exact as doubles below 2^53).
local STAT_REC8 = '>i8i8i8'
-- Both with the parent.
local STAT_RECP, STAT_REC8P = STAT_REC .. 'c8', STAT_REC8 .. 'c8'

-- The i64 h * 2^32 + l (whole numbers, |l| < 2^53) as halves (h signed, l in [0, 2^32)),
-- saturated at the i64 bounds as DirStat's addition saturates.
local function i64_norm(h, l)
  if l < 0 or l >= P32 then
    local c = math.floor(l / P32)
    h, l = h + c, l - c * P32
  end
  if h >= P31 then return P31 - 1, P32 - 1 end
  if h < -P31 then return -P31, 0 end
  return h, l
end

-- The most directories whose statistics records, and whose quota chains and quotas, a
-- volume keeps from call to call (a few hundred bytes each: at most ≈ 4 MB of Lua memory
-- per volume), and the most volumes that keep them.
local MEMO_MAX, MEMO_VOLUMES = 8192, 8

-- Whether this library owns the volume's directory statistics and quotas (OWNED), found
-- once per call before the first read of either (`stat_check`, `quota_load`) with one GET.
-- {prefix}statsOwner names the library that last wrote them: MYID
-- (the address of this library's MEMO table and the server's time at its first call:
-- unique per library and server process), or 'script' for the scripts way, which keeps
-- nothing. While this library
-- owns the volume, what it kept at the end of its last call (`stats_save`: the statistics
-- records and quotas it read or wrote, the number of quotas, the quota chains) is what is
-- stored, as nothing else wrote them since, and the call takes it instead of reading again
-- (the HGET per directory, the HLEN, the HGETALL or HGETs of quotas, the walks of
-- `quota_chain`). Else the call starts from nothing and, before it writes either hash,
-- makes this library the owner (`stats_claim`), so that every other (another version of
-- the library, another server's after a failover) drops what it kept. Anything else that
-- writes those hashes must delete {prefix}statsOwner.
local function stats_load()
  local o = redis.call('GET', S.owner)
  if not KEEP then
    OWNED = o == 'script'
    return
  end
  if not MYID then
    local t = redis.call('TIME')
    MYID = tostring(MEMO) .. ' ' .. t[1] .. '.' .. t[2]
  end
  OWNED = o == MYID
  -- Taken out until `stats_save` puts it back: a call that stops on an error keeps nothing.
  local m = MEMO[S.tag]
  if m then
    MEMO[S.tag] = nil
    MEMON = MEMON - 1
    if OWNED then
      DSV, DSD, DSVN, QN, QCH, QDEP, QCHN, QC, QRAW, QCN = m[1], m[2], m[3], m[4], m[5], m[6],
        m[7], m[8], m[9], m[10]
    end
    -- (The table itself serves again: `stats_save`.)
    MEMO[0] = m
  end
end

-- Before the call writes the statistics or quotas hash: this library becomes their owner.
-- The limits record gets a fourth field `1` if it has none: libraries from before
-- {prefix}statsOwner existed (which would write the hashes without a word) refuse a limits
-- record of four fields (`Corrupted`) rather than make what this one kept wrong.
local function stats_claim()
  if OWNED == nil then stats_load() end
  if not OWNED then
    redis.call('SET', S.owner, KEEP and MYID or 'script')
    OWNED = true
    if DSON and not LIMITS[4] then
      redis.call('SET', S.limits, LIMITS[5] .. ' 1')
      LIMITS[4] = true
    end
  end
end

-- At the end of a call of a library that owns the volume (Redis Functions only): keeps for
-- the next call the statistics records and the quotas as now stored (QC: the decoded quotas
-- it read, with the changes `flush_quotas` wrote; QRAW: the hash as read whole, under QC),
-- the number of quotas and the chains; past MEMO_MAX directories, the records or the chains
-- and quotas start again from none.
local function stats_save()
  if not OWNED or not KEEP then return end
  if DSVN > MEMO_MAX then DSV, DSD, DSVN = {}, {}, 0 end
  if QCHN > MEMO_MAX or QCN > MEMO_MAX then
    QCH, QDEP, QCHN, QC, QRAW, QCN = {}, {}, 0, {}, nil, 0
  end
  if MEMON >= MEMO_VOLUMES then MEMO, MEMON = {}, 0 end
  MEMON = MEMON + 1
  local m = MEMO[0]
  if m then MEMO[0] = nil else m = {} end
  m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], m[9], m[10] = DSV, DSD, DSVN, QN, QCH, QDEP,
    QCHN, QC, QRAW, QCN
  MEMO[S.tag] = m
end

-- Writes the changes of directory statistics (`restat`, `stat_reset`, `stat_parent`): each
-- changed directory's new record, computed from the one `stat_check` read (exactly, for any
-- i64), with its parent (the new one, else the stored one), all in one HSET; the records of
-- deleted directories and of those back to all zeros without a parent in one HDEL (a
-- missing record is all zeros).
local function flush_stats()
  local n = #DSLIST
  if n == 0 then return end
  stats_claim()
  local set, del, ns = {}, {}, 0
  for j = 1, n do
    local d = DSLIST[j]
    local e = DS[d]
    -- The common case: the record as the last flush wrote it, kept decoded (DSD: each value
    -- below 2^52 in magnitude), and changes below 2^32 (high halves 0): added as doubles,
    -- exact, without decoding the record again.
    local c, rec = DSD[d], nil
    if c and e[2] == 0 and e[4] == 0 and not e[6] then
      local i, l, sp = c[1] + e[1], c[2] + e[3], c[3] + e[5]
      if i * i + l * l + sp * sp < P104 then
        local parent = e[7] or c[4]
        rec = struct.pack(STAT_REC8P, i, l, sp, parent)
        c[1], c[2], c[3], c[4] = i, l, sp, parent
        ns = ns + 2
        set[ns - 1], set[ns] = d, rec
        DSV[d] = rec
      end
    end
    if not rec then
      local di, dlh, dll, dsh, dsl, reset, parent = e[1], e[2], e[3], e[4], e[5], e[6], e[7]
      local v = false
      if not reset then
        v = DSV[d]
        if v == nil then
          -- Changed without `stat_check` (no op does that): read it now.
          v = redis.call('HGET', S.stats, d)
          DSVN = DSVN + 1
        end
        if v and #v ~= 24 and #v ~= 32 then
          error('directory ' .. dec(d) .. ': undecodable statistics record')
        end
      end
      -- Most values are below 2^53 in magnitude: read, added and written as doubles, exact
      -- there (a value past 2^53 may come out rounded, but never to below 2^53: then the
      -- halves are used). A sum of squares below 2^106 means each |x| < 2^53 (x * x rounds
      -- up to 2^106 at worst).
      local i, l, sp, p = 0, 0, 0, nil
      if v then
        if #v == 32 then
          i, l, sp, p = struct.unpack(STAT_REC8P, v)
        else
          i, l, sp = struct.unpack(STAT_REC8, v)
        end
      end
      -- The new parent, else the stored one (none: the root, or a record from before quotas).
      parent = parent or p
      local xl, xs = dlh * P32 + dll, dsh * P32 + dsl
      local ok = i * i + l * l + sp * sp + xl * xl + xs * xs < P106
      if ok then
        i, l, sp = i + di, l + xl, sp + xs
        ok = i * i + l * l + sp * sp < P106
      end
      DSD[d] = nil
      if ok then
        if parent then
          rec = struct.pack(STAT_REC8P, i, l, sp, parent)
          if i * i + l * l + sp * sp < P104 then DSD[d] = { i, l, sp, parent } end
        elseif i ~= 0 or l ~= 0 or sp ~= 0 then
          rec = struct.pack(STAT_REC8, i, l, sp)
        end
      else
        local ih, il, lh, ll, sh, sl = 0, 0, 0, 0, 0, 0
        if v then ih, il, lh, ll, sh, sl = struct.unpack(STAT_REC, v) end
        ih, il = i64_norm(ih, il + di)
        lh, ll = i64_norm(lh + dlh, ll + dll)
        sh, sl = i64_norm(sh + dsh, sl + dsl)
        if parent then
          rec = struct.pack(STAT_RECP, ih, il, lh, ll, sh, sl, parent)
        elseif ih ~= 0 or il ~= 0 or lh ~= 0 or ll ~= 0 or sh ~= 0 or sl ~= 0 then
          rec = struct.pack(STAT_REC, ih, il, lh, ll, sh, sl)
        end
      end
      if rec then
        ns = ns + 2
        set[ns - 1], set[ns] = d, rec
      elseif v or reset then
        del[#del + 1] = d
      end
      -- (What is stored after the call, kept for the next one: `stats_save`; a deleted
      -- directory's is never read again.)
      if reset and not rec then
        DSV[d], DSD[d] = nil, nil
      else
        DSV[d] = rec or false
      end
    end
  end
  for i = 1, #del, 510 do
    redis.call('HDEL', S.stats, unpack(del, i, math.min(i + 509, #del)))
  end
  for i = 1, ns, 510 do
    redis.call('HSET', S.stats, unpack(set, i, math.min(i + 509, ns)))
  end
end

-- Directory statistics (meta_core::stats) -------------------------------------------------
--
-- One hash per volume (S.stats), one field per directory: its ino8 -> a 32-byte record of
-- three big-endian i64 (STAT_REC): the inodes charged to it, their lengths, their space,
-- then its parent's ino8 (written by mknod, rename and restore of a directory:
-- `stat_parent`), so that the quotas above a directory are found from this hash alone
-- (`quota_chain`); a missing field is all zeros, a 24-byte record (from before quotas) has
-- no parent. Kept only when the limits record says so (`limits`, DSON). In
-- its check phase an op calls `stat_check` for every directory it may charge: that reads the
-- directory's record (HGET, once per batch, none while kept from an earlier call:
-- `stats_load`) and checks that it decodes. In its write phase it
-- computes its changes (`restat`, at the places meta_core::logic calls checks::restat, with
-- the same attributes before and after), which the batch adds up per directory;
-- `flush_batch` writes the new records (`flush_stats`: one HSET). Deleting a directory
-- deletes its record (`stat_reset`, as TxnView::delete_inode does), with the changes to it
-- made earlier in the batch; a non-directory never has one (only directories are charged).

-- Check phase of an op that may change directory statistics: when the volume keeps them,
-- the statistics hash must be a hash and directory `dir8`'s record (unless `dir8` is 0) must
-- decode; flush_stats adds to it. Also reads the limits record, so the write phase's
-- `restat` / `stat_reset` never fail. The batch's first read of the hash tells its type (a
-- TYPE only when that read fails, or for `dir8` 0 before any read).
local function stat_check(dir8)
  if DSON == nil then limits() end
  if not DSON then return end
  if OWNED == nil then stats_load() end
  local v = DSV[dir8]
  if v == nil then
    if dir8 == ZERO8 then
      check_type(S.stats, 'hash')
      DSV[dir8] = false
      return
    end
    if SETS[S.stats] then
      v = redis.call('HGET', S.stats, dir8)
    else
      v = redis.pcall('HGET', S.stats, dir8)
      if type(v) == 'table' and v.err then
        check_type(S.stats, 'hash')
        error(v)
      end
      SETS[S.stats] = true
    end
    DSV[dir8], DSVN = v, DSVN + 1
  end
  if v and #v ~= 32 and #v ~= 24 then
    fail('Corrupted', 'directory ' .. dec(dir8) .. ': undecodable statistics record ('
      .. #v .. ' bytes)')
  end
end

-- The length of a directory (4096), whose charge is the same for every type.
local LEN4K = '\0\0\0\0\0\0\16\0'

-- stats::charge: the directory inode `ino8` with attributes `a` is charged to (nil for none:
-- the root, a sustained inode, an inode named in several directories), then the charge: its
-- length and its space (Attr::space), each as two 32-bit halves (high, low; the low half of
-- the space may be 2^32).
local function charge(ino8, a)
  local p = a.parent
  if p == ZERO8 or a.nlink == 0 or ino8 == ROOT8 then return nil end
  local len = a.length
  if len == ZERO8 then return p, 0, 0, 0, 4096 end
  if len == LEN4K then return p, 0, 4096, 0, 4096 end
  local hi, lo = struct.unpack('>I4I4', len)
  if a.typ == T_REG then return p, hi, lo, hi, math.ceil(lo / 4096) * 4096 end
  return p, hi, lo, 0, 4096
end

-- `stat_check` for the directory an inode with attributes `a` (nil: none) is charged to;
-- the limits and the hash's type in any case.
local function stat_check_attr(ino8, a)
  local d = a and charge(ino8, a)
  stat_check(d or ZERO8)
end

-- What `charge` reads of attributes, copied: the "before" of an op that changes `a` in place.
-- With statistics off (known from the check phase) `restat` looks at nothing: no copy.
local function stat_snap(a)
  if DSON == false then return a end
  return { typ = a.typ, nlink = a.nlink, length = a.length, parent = a.parent }
end

-- The batch's changes to directory `dir8`, a new entry: { inodes, length high 32-bit half,
-- length low half (the change is high * 2^32 + low), space high half, space low half, reset
-- (its stored record is deleted first) }.
local function stat_entry(dir8)
  local e = { 0, 0, 0, 0, 0, false }
  DS[dir8] = e
  DSLIST[#DSLIST + 1] = dir8
  return e
end

-- checks::restat = stats::recharge applied: inode `ino8`'s attributes go from `before` to
-- `after` (nil: absent); its old directory loses its old charge, its new one gains the new
-- charge (one directory: the difference). Write phase (the op called stat_check for both
-- directories, unless the charge does not change: then nothing is read here).
local function restat(ino8, before, after)
  if DSON == false then return end
  if before == nil or after == nil then
    -- An inode appears (mknod, restore) or goes (its last link's removal): only its
    -- directory's charge changes, by k = 1 or -1 times it.
    local a, k = after, 1
    if before then a, k = before, -1 end
    if not a then return end
    local p = a.parent
    if p == ZERO8 or a.nlink == 0 or ino8 == ROOT8 then return end
    if DSON == nil then
      limits()
      if not DSON then return end
    end
    local t = DS[p] or stat_entry(p)
    if a.length == ZERO8 then
      t[1], t[5] = t[1] + k, t[5] + k * 4096
    else
      local _, hi, lo, sh, sl = charge(ino8, a)
      t[1], t[2], t[3], t[4], t[5] = t[1] + k, t[2] + k * hi, t[3] + k * lo, t[4] + k * sh,
        t[5] + k * sl
    end
    return
  end
  local d, dh, dl, dsh, dsl = charge(ino8, before)
  local e, eh, el, esh, esl = charge(ino8, after)
  if d == e and (d == nil or (dh == eh and dl == el and dsh == esh and dsl == esl)) then
    return
  end
  if DSON == nil then
    limits()
    if not DSON then return end
  end
  -- (A file's length is most often below 4 GiB: its high halves are 0.)
  if d then
    local t = DS[d] or stat_entry(d)
    t[1], t[3], t[5] = t[1] - 1, t[3] - dl, t[5] - dsl
    if dh ~= 0 then t[2], t[4] = t[2] - dh, t[4] - dsh end
  end
  if e then
    local t = DS[e] or stat_entry(e)
    t[1], t[3], t[5] = t[1] + 1, t[3] + el, t[5] + esl
    if eh ~= 0 then t[2], t[4] = t[2] + eh, t[4] + esh end
  end
end

-- The statistics record of directory `ino8` goes with it (TxnView::delete_inode): the
-- batch's changes to it so far are dropped, its stored record deleted; later changes start
-- from 0. The op's check phase called `stat_check` (any directory, or 0).
local function stat_reset(ino8)
  if DSON == nil then limits() end
  if not DSON then return end
  local t = DS[ino8] or stat_entry(ino8)
  t[1], t[2], t[3], t[4], t[5], t[6], t[7] = 0, 0, 0, 0, 0, true, nil
  -- (Its parent, as `dir_parent` sees it, may change: the memoized quota chains through it go.)
  if QCH[ino8] then chains_reset() end
end

-- Directory `dir8`'s statistics record names `parent8` as its parent from now on (mknod,
-- rename, restore of a directory; the op read its record in its check phase, unless new).
local function stat_parent(dir8, parent8)
  if not DSON or dir8 == ROOT8 or parent8 == ZERO8 then return end
  local t = DS[dir8] or stat_entry(dir8)
  t[7] = parent8
  -- The memoized quota chains through it go (every directory of a memoized chain's walk is
  -- memoized itself: see `quota_chain`).
  if QCH[dir8] then chains_reset() end
end

-- The statistics of directory `dir8` as the batch sees them (its record plus the batch's
-- changes), as halves { ih, il, lh, ll, sh, sl } (STAT_REC). Check phase (reads the record).
local function stat_now(dir8)
  stat_check(dir8)
  local v, e = DSV[dir8], DS[dir8]
  local s = { 0, 0, 0, 0, 0, 0 }
  if v and not (e and e[6]) then
    s[1], s[2], s[3], s[4], s[5], s[6] = struct.unpack(STAT_REC, v)
  end
  if e then
    s[1], s[2] = i64_norm(s[1], s[2] + e[1])
    s[3], s[4] = i64_norm(s[3] + e[2], s[4] + e[3])
    s[5], s[6] = i64_norm(s[5] + e[4], s[6] + e[5])
  end
  return s
end

-- a := a + b, statistics as halves (b's from index o + 1 on), saturating as DirStat's
-- addition does.
local function stat_add(a, b, o)
  a[1], a[2] = i64_norm(a[1] + b[o + 1], a[2] + b[o + 2])
  a[3], a[4] = i64_norm(a[3] + b[o + 3], a[4] + b[o + 4])
  a[5], a[6] = i64_norm(a[5] + b[o + 5], a[6] + b[o + 6])
end

-- Decimal text of the i64 h * 2^32 + l (halves as i64_norm gives them).
local function i64_dec(h, l)
  if h >= 0 then return dec(struct.pack('>I4I4', h, l)) end
  if l == 0 then return '-' .. dec(struct.pack('>I4I4', -h, 0)) end
  return '-' .. dec(struct.pack('>I4I4', -h - 1, P32 - l))
end

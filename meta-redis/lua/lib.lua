-- lib.lua: what the op bodies (ops/*.lua) share: errors, the attribute codec, the batch's
-- caches of attributes and counters, the POSIX checks of meta_core::logic and the
-- permission rules of meta_core::perm.
--
-- Every op body is `OPS.<name> = function(K, A)`: K are its keys (after the batch's shared
-- keys, see `S`), A its arguments; A[1] is its fixed record, unpacked with `struct`. An op
-- first checks, then writes: a failing op writes nothing. Its reply: {'ok', ...} or, through
-- `fail`, {'err', kind, message}; `retry` stops the batch at this op (nothing of it written).
--
-- Keys an op can only know from what it reads (the inode an entry names, an inode's chunks,
-- a session's open inodes) come one of two ways: declared by the client, which read them
-- beforehand (with strict_keys; the op then re-checks what was read and asks for a retry
-- when it changed), or, by default, derived here from the values read (`ikey`,
-- `chunk_key`): keys with the volume's hash tag, so in the same Cluster slot as the declared
-- ones. An op sees which way from the number of keys or arguments it was given.
--
-- Attributes are 73 bytes (version 1, type, mode u16, uid, gid, rdev u32, atime/mtime/ctime
-- as i64 seconds + u32 nanoseconds, nlink u32, length u64, parent u64, flags u8). Within a
-- batch they are read once and written once: `get_attr` / `put_attr` / `del_attr` go
-- through a cache that `flush_batch` writes back (one MSET, one DEL) when the batch ends;
-- the usedSpace and totalInodes counters likewise (one INCRBY each), and the changes to
-- directory statistics (one HSET, one HDEL; see `flush_stats`). Attribute keys are never
-- touched any other way inside a batch.

local T_REG, T_DIR, T_LNK = 1, 2, 3
local U32MAX = 4294967295
local ATTR = '>BBHc4c4c4c12c12c12I4c8c8c1'
-- The nanoseconds of the three times (bytes 25..28, 37..40, 49..52).
local ATTR_NS = '>' .. 'xxxxxxxxxxxxxxxxxxxxxxxx' .. 'I4xxxxxxxxI4xxxxxxxxI4'

local OPS = {}
-- (A Functions library runs this file once at load, where only `redis.register_function`
-- and plain Lua are available: no library call such as `string.rep` at this level.)

-- Ends the op with a POSIX error (only before the first write).
local function fail(kind, msg)
  error({ meta_err = kind, msg = msg }, 0)
end

-- Ends the op (and the batch) asking the client to read its keys again (only before the
-- first write).
local function retry(msg)
  error({ meta_retry = true, msg = msg }, 0)
end

-- Raises an error computed by the client (`Kind \0 message`, '' = none) at this point of
-- the checks (meta_core::logic::check_write / check_length come after the inode's checks).
local function raise_arg(e)
  if e ~= '' then
    local z = string.find(e, '\0', 1, true)
    fail(string.sub(e, 1, z - 1), string.sub(e, z + 1))
  end
end

-- a < b for two 8-byte big-endian unsigned numbers, independent of the locale (Lua's `<`
-- on strings uses strcoll).
local function u64_lt(a, b)
  local ah, al = struct.unpack('>I4I4', a)
  local bh, bl = struct.unpack('>I4I4', b)
  return ah < bh or (ah == bh and al < bl)
end

-- The later of two 12-byte times (signed 64-bit seconds, then unsigned nanoseconds).
local function tmax(a, b)
  if a == b then return a end
  local ah, al, an = struct.unpack('>i4I4I4', a)
  local bh, bl, bn = struct.unpack('>i4I4I4', b)
  if ah ~= bh then
    if ah < bh then return b end
    return a
  end
  if al ~= bl then
    if al < bl then return b end
    return a
  end
  if an < bn then return b end
  return a
end

-- `len8` rounded up to 4 KiB, at least 4 KiB (meta_core::types::align_space). Exact: the
-- result is a multiple of 4096 below 2^65, which a double holds exactly.
local function align(len8)
  local hi, lo = struct.unpack('>I4I4', len8)
  if hi == 0 and lo == 0 then return 4096 end
  return hi * 4294967296 + math.ceil(lo / 4096) * 4096
end

-- A whole number as decimal text for INCRBY (exact below 2^63).
local function num(n)
  return string.format('%.0f', n)
end

local function show(name)
  return '"' .. name .. '"'
end

-- The batch's state -------------------------------------------------------------------------

-- Shared keys of the batch (KEYS[1..8]): limits, usedSpace, totalInodes, sessions, pending
-- files, pending slices, directory statistics, directory quotas; the volume's key tag
-- `{prefix}` (ARGV[2]) and whether keys are strict (ARGV[4] 's': no undeclared key).
local S = {}
local AC = {}      -- attribute key -> encoded attributes, or false when absent / deleted
local AD = {}      -- attribute key -> the decoded (checked) form of AC's value, once decoded
local DSET = {}    -- attribute keys written by the batch
local DLIST = {}   -- the same, in order
local CNT = {}     -- counter key -> { v = stored value, d = delta of the batch }
local LIMITS = nil -- { capacity, inodes, dir_stats (boolean) } once read
local DS = {}      -- directory ino8 -> the batch's changes to its statistics (see `restat`)
local DSLIST = {}  -- the same directories, in order
local DSV = {}     -- directory ino8 -> its stored statistics record as read (false: none)
local DSON = nil   -- LIMITS[3] (whether the volume keeps directory statistics) once read
local LIVE = {}    -- session ID -> true once found live by this batch (close_session forgets)
local SETS = {}    -- keys already type-checked by this batch (check_type)
-- Directory quotas (see `quota_chain`): committed by the ops that succeeded, written back
-- at the end (`flush_quotas`). An op stages the creation and removal of quotas (QST) until
-- it succeeds (`quota_end`); it changes a quota's usage in place, keeping the old usage in
-- its undo log (QU) until then.
local QC = {}      -- directory ino8 -> its quota as the batch sees it (false: none)
local QRAW = nil   -- the quotas hash as stored (directory ino8 -> record), when read whole
local QLIST = {}   -- directories whose quota the batch changed, in order
local QDIRTY = {}  -- the same, as a set
local QST = nil    -- the running op's staged quotas: directory ino8 -> quota or false
local QSTX = false -- whether QST creates or removes a quota (not only new limits)
local QN = nil     -- how many quotas the volume has as the batch sees it (HLEN once)
local QND = 0      -- the running op's staged change to QN
local QUN = 0      -- entries in the running op's undo log of usage changes (see `quota_add`):
local UQ, UD, U1, U2, U3, U4, U5, U6 -- the first (upvalues: cheaper than table slots),
local QU = {}      -- the others, 8 slots each
local QCH = {}     -- directory ino8 -> its `quota_chain` (a table never changed), memoized
local QDEP = {}    -- directory ino8 in QCH -> the directories on its way to the root, both included
local QWAY = {}    -- scratch of `quota_chain`: the directories of its walk (past its count: stale)

local function begin_batch(keys, tag, flags)
  S = { limits = keys[1], used = keys[2], total = keys[3], sessions = keys[4], pf = keys[5],
    ps = keys[6], stats = keys[7], quotas = keys[8], tag = tag, strict = flags == 's' }
  AC, AD, DSET, DLIST, CNT, LIMITS, LIVE, SETS = {}, {}, {}, {}, {}, nil, {}, {}
  DS, DSLIST, DSV, DSON = {}, {}, {}, nil
  QC, QRAW, QLIST, QDIRTY, QST, QSTX, QN, QND = {}, nil, {}, {}, nil, false, nil, 0
  QUN, QCH, QDEP = 0, {}, {}
end

-- The key of kind `kind` of an inode (crate::layout::Layout: `{prefix}` kind decimal inode).
local function ikey(kind, ino8)
  return S.tag .. kind .. dec(ino8)
end

-- The attribute, symlink, xattr, openers and entries keys of an inode.
local function inode_keys(ino8)
  local t, n = S.tag, dec(ino8)
  return t .. 'i' .. n, t .. 's' .. n, t .. 'x' .. n, t .. 'o' .. n, t .. 'd' .. n
end

-- The key of chunk `indx` of an inode.
local function chunk_key(ino8, indx)
  return S.tag .. 'c' .. dec(ino8) .. '_' .. indx
end

-- 2^31, 2^32 and 2^53 (beyond which a double no longer holds every integer).
local P31, P32, P53 = 2147483648, 4294967296, 9007199254740992
local P106 = P53 * P53

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

-- Writes the changes of directory statistics (`restat`, `stat_reset`, `stat_parent`): each
-- changed directory's new record, computed from the one `stat_check` read (exactly, for any
-- i64), with its parent (the new one, else the stored one), all in one HSET; the records of
-- deleted directories and of those back to all zeros without a parent in one HDEL (a
-- missing record is all zeros).
local function flush_stats()
  local n = #DSLIST
  if n == 0 then return end
  local set, del = {}, {}
  for j = 1, n do
    local d = DSLIST[j]
    local e = DS[d]
    local di, dlh, dll, dsh, dsl, reset, parent = e[1], e[2], e[3], e[4], e[5], e[6], e[7]
    local v = false
    if not reset then
      v = DSV[d]
      if v == nil then
        -- Changed without `stat_check` (no op does that): read it now.
        v = redis.call('HGET', S.stats, d)
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
    local rec, ok = nil, i * i + l * l + sp * sp + xl * xl + xs * xs < P106
    if ok then
      i, l, sp = i + di, l + xl, sp + xs
      ok = i * i + l * l + sp * sp < P106
    end
    if ok then
      if parent then
        rec = struct.pack(STAT_REC8P, i, l, sp, parent)
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
      set[#set + 1] = d
      set[#set + 1] = rec
    elseif v or reset then
      del[#del + 1] = d
    end
  end
  for i = 1, #del, 510 do
    redis.call('HDEL', S.stats, unpack(del, i, math.min(i + 509, #del)))
  end
  for i = 1, #set, 510 do
    redis.call('HSET', S.stats, unpack(set, i, math.min(i + 509, #set)))
  end
end

-- A quota record ({prefix}quotas, crate::reply::quota_of): max_space and max_inodes (u64),
-- then the usage: inodes, length, space (i64); every field read as its signed high and
-- unsigned low 32-bit halves (STAT_REC's way: packing the halves back gives the same bytes,
-- so a u64 limit past 2^63 stays exact too). Decoded, a quota is the array { usage ih, il,
-- lh, ll, sh, sl, then max_space h, l, max_inodes h, l }: usage first, as `stat_add` takes
-- it.
local QUOTA_REC = '>i4I4i4I4i4I4i4I4i4I4'

local function enc_quota(q)
  return struct.pack(QUOTA_REC, q[7], q[8], q[9], q[10], q[1], q[2], q[3], q[4], q[5], q[6])
end

-- Writes the quotas the batch changed (one HSET, one HDEL).
local function flush_quotas()
  local n = #QLIST
  if n == 0 then return end
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

-- Writes the cached attributes, counter deltas, directory statistics and quotas back.
local function flush_batch()
  local set, del = {}, {}
  for _, k in ipairs(DLIST) do
    local v = AC[k]
    if v then
      set[#set + 1] = k
      set[#set + 1] = v
    else
      del[#del + 1] = k
    end
  end
  for i = 1, #set, 512 do
    redis.call('MSET', unpack(set, i, math.min(i + 511, #set)))
  end
  for i = 1, #del, 512 do
    redis.call('DEL', unpack(del, i, math.min(i + 511, #del)))
  end
  for k, c in pairs(CNT) do
    if c.d ~= 0 then redis.call('INCRBY', k, num(c.d)) end
  end
  flush_stats()
  flush_quotas()
  -- (The caches stay as they are until the next call's begin_batch.)
end

-- Attributes --------------------------------------------------------------------------------

local function bad_attr(ino8, why)
  fail('Corrupted', 'inode ' .. dec(ino8) .. ': ' .. why)
end

local function dec_attr(v, ino8)
  if #v ~= 73 then bad_attr(ino8, 'undecodable attributes (' .. #v .. ' bytes)') end
  local ver, typ, mode, uid, gid, rdev, at, mt, ct, nlink, len, parent, flags =
    struct.unpack(ATTR, v)
  if ver ~= 1 then bad_attr(ino8, 'undecodable attributes (version ' .. ver .. ')') end
  if typ < 1 or typ > 7 then bad_attr(ino8, 'unknown file type code ' .. typ) end
  local an, mn, cn = struct.unpack(ATTR_NS, v)
  if an >= 1000000000 or mn >= 1000000000 or cn >= 1000000000 then
    bad_attr(ino8, 'bad nanoseconds')
  end
  return { typ = typ, mode = mode, uid = uid, gid = gid, rdev = rdev, atime = at, mtime = mt,
    ctime = ct, nlink = nlink, length = len, parent = parent, flags = flags }
end

local function enc_attr(a)
  return struct.pack(ATTR, 1, a.typ, a.mode, a.uid, a.gid, a.rdev, a.atime, a.mtime, a.ctime,
    a.nlink, a.length, a.parent, a.flags)
end

-- The stored (or batch-written) attributes at `key`, encoded; false when absent.
local function raw_attr(key)
  local v = AC[key]
  if v == nil then
    v = redis.call('GET', key)
    AC[key] = v
  end
  return v
end

-- Decoded attributes, or nil when absent. The table is the batch's cached copy: an op
-- changes it only in its write phase, and then stores it with put_attr.
local function get_attr(key, ino8)
  local d = AD[key]
  if d then return d end
  local v = raw_attr(key)
  if not v then return nil end
  d = dec_attr(v, ino8)
  AD[key] = d
  return d
end

local function dirty(key)
  if not DSET[key] then
    DSET[key] = true
    DLIST[#DLIST + 1] = key
  end
end

-- Stores `a` (written back when the batch ends); returns the encoded value.
local function put_attr(key, a)
  local v = enc_attr(a)
  dirty(key)
  AC[key] = v
  AD[key] = a
  return v
end

-- Stores encoded attributes (decoded again if an op of the batch reads them).
local function put_raw_attr(key, v)
  dirty(key)
  AC[key] = v
  AD[key] = nil
end

local function del_attr(key)
  dirty(key)
  AC[key] = false
  AD[key] = nil
end

-- logic::existing_attr: EINVAL for inode 0, ENOENT when missing.
local function existing_attr(key, ino8)
  if ino8 == ZERO8 then fail('InvalidArgument', 'inode 0 is never valid') end
  local a = get_attr(key, ino8)
  if not a then fail('NotFound', 'inode ' .. dec(ino8)) end
  return a
end

-- logic::dir_attr: existing_attr + ENOTDIR.
local function dir_attr(key, ino8)
  local a = existing_attr(key, ino8)
  if a.typ ~= T_DIR then fail('NotADirectory', 'inode ' .. dec(ino8)) end
  return a
end

-- logic::live_dir_attr: a directory that is to receive an entry must not be removed.
local function live_dir_attr(key, ino8)
  local a = dir_attr(key, ino8)
  if a.nlink == 0 then fail('NotFound', 'directory ' .. dec(ino8) .. ' was removed') end
  return a
end

-- logic::regular_file.
local function regular_file(key, ino8, what)
  local a = existing_attr(key, ino8)
  if a.typ == T_DIR then fail('IsADirectory', what .. ' of directory ' .. dec(ino8)) end
  if a.typ ~= T_REG then fail('InvalidArgument', what .. ' of non-regular inode ' .. dec(ino8)) end
  return a
end

-- logic::bump_dir: nlink + delta (clamped), mtime/ctime raised to t (never lowered).
local function bump_dir(a, delta, t)
  local n = a.nlink + delta
  if n < 0 then n = 0 end
  if n > U32MAX then n = U32MAX end
  a.nlink = n
  a.mtime = tmax(a.mtime, t)
  a.ctime = tmax(a.ctime, t)
  return a
end

-- Attr::space: bytes counted against usedSpace.
local function space(a)
  if a.typ == T_REG and a.length ~= ZERO8 then return align(a.length) end
  return 4096
end

-- Permissions (meta_core::perm) ------------------------------------------------------------
--
-- A caller (`perm_caller`): uid and gid as 4-byte big-endian strings, compared bytewise with
-- the attributes' uid and gid, and its supplementary groups packed the same way, 4 bytes
-- each (possibly none). uid 0 is root. Mode bits: setuid 2048, setgid 1024, sticky 512,
-- group execute 8; permission masks: read 4, write 2, execute/search 1.

local ROOT4 = '\0\0\0\0'

local function perm_caller(uid4, gid4, groups)
  return { uid = uid4, gid = gid4, groups = groups or '' }
end

-- A 4-byte id as a number (for messages).
local function id4(s)
  return (struct.unpack('>I4', s))
end

-- Caller::in_group: the caller's group or one of its supplementary groups.
local function perm_in_group(c, gid4)
  if c.gid == gid4 then return true end
  local g = c.groups
  for o = 1, #g, 4 do
    if string.sub(g, o, o + 3) == gid4 then return true end
  end
  return false
end

-- PERM_HAS[bits * 8 + mask]: whether the 3 permission bits `bits` include every bit of
-- `mask` (bits & mask == mask), for bits and mask in 0..7. Filled once, at load, with plain
-- arithmetic: the checks below look it up instead of calling the bit library (a library
-- call costs far more than a table lookup in Redis's Lua).
local PERM_HAS = {}
for b = 0, 7 do
  for m = 0, 7 do
    local ok, bb, mm = true, b, m
    for _ = 1, 3 do
      if mm % 2 == 1 and bb % 2 == 0 then ok = false end
      bb, mm = (bb - bb % 2) / 2, (mm - mm % 2) / 2
    end
    PERM_HAS[b * 8 + m] = ok
  end
end

-- perm::permits: one class of bits (owner, else group, else other); root reads and writes
-- anything and executes a directory, or a file with an execute bit. `mask` is a whole
-- number >= 0 (only its 3 low bits count); modes are u16, so the shifts are exact
-- arithmetic.
local function perm_permits(a, c, mask)
  mask = mask % 8
  local m = a.mode
  if c.uid == ROOT4 then
    -- (An execute bit: 1, 8 or 64.)
    return mask % 2 == 0 or a.typ == T_DIR or m % 2 == 1 or (m - m % 8) / 8 % 2 == 1
      or (m - m % 64) / 64 % 2 == 1
  end
  local bits
  if c.uid == a.uid then
    bits = (m - m % 64) / 64 % 8
  elseif perm_in_group(c, a.gid) then
    bits = (m - m % 8) / 8 % 8
  else
    bits = m % 8
  end
  return PERM_HAS[bits * 8 + mask]
end

-- perm::check_access: EACCES.
local function perm_check_access(a, ino8, c, mask, what)
  if perm_permits(a, c, mask) then return end
  local m = ''
  if bit.band(mask, 4) ~= 0 then m = m .. 'r' end
  if bit.band(mask, 2) ~= 0 then m = m .. 'w' end
  if bit.band(mask, 1) ~= 0 then m = m .. 'x' end
  fail('PermissionDenied', what .. ': uid ' .. id4(c.uid) .. ' has no ' .. m
    .. ' permission on inode ' .. dec(ino8) .. ' (mode ' .. string.format('%o', a.mode)
    .. ', owner ' .. id4(a.uid) .. ':' .. id4(a.gid) .. ')')
end

-- perm::check_search: search permission on a directory an entry is looked up in.
local function perm_check_search(dir, ino8, c, what)
  if not perm_permits(dir, c, 1) then perm_check_access(dir, ino8, c, 1, what) end
end

-- perm::check_dir_write: write and search permission on a directory that gains or loses an
-- entry.
local function perm_check_dir_write(dir, ino8, c, what)
  if not perm_permits(dir, c, 3) then perm_check_access(dir, ino8, c, 3, what) end
end

-- perm::check_sticky: EPERM.
local function perm_check_sticky(dir, target, c, what)
  if dir.mode % 1024 >= 512 and c.uid ~= ROOT4 and c.uid ~= dir.uid
    and c.uid ~= target.uid then
    fail('NotPermitted', what .. ': sticky directory owned by uid ' .. id4(dir.uid))
  end
end

-- perm::check_delete (may_delete): write and search permission on `dir` (EACCES), then the
-- sticky-bit rule (EPERM) when the target inode exists (`target` nil: a dangling entry).
local function perm_check_delete(dir, dir8, target, c, what)
  perm_check_dir_write(dir, dir8, c, what)
  if target then perm_check_sticky(dir, target, c, what) end
end

-- perm::kill_bits of an inode with mode `mode` and group `gid4`: setuid, and setgid when
-- group execute is set or the caller is neither root nor in the group.
local function perm_kill_bits(mode, gid4, c)
  local kill = bit.band(mode, 2048)
  if bit.band(mode, 1024) ~= 0
    and (bit.band(mode, 8) ~= 0 or not (c.uid == ROOT4 or perm_in_group(c, gid4))) then
    kill = kill + 1024
  end
  return kill
end

-- perm::mode_after_write: the mode of `a` after a write or truncate by `c` (kill_bits are
-- removed from a regular file unless the caller is root).
local function perm_mode_after_write(a, c)
  if c.uid == ROOT4 or a.typ ~= T_REG then return a.mode end
  return a.mode - perm_kill_bits(a.mode, a.gid, c)
end

-- perm::check_setattr: checks a setattr (mask bits MODE 1, UID 2, GID 4, ATIME 8, MTIME 16,
-- ATIME_NOW 32, MTIME_NOW 64, SIZE 128; values mode (number), uid4, gid4) and returns the
-- mode the inode gets. EACCES (truncate, touch), EPERM (chown, chgrp, chmod, times).
local function perm_check_setattr(a, ino8, c, mask, vmode, vuid, vgid)
  local function has(b) return bit.band(mask, b) ~= 0 end
  local root = c.uid == ROOT4
  local owner = root or c.uid == a.uid
  local function denied(what)
    fail('NotPermitted', what .. ' of inode ' .. dec(ino8) .. ' (owner ' .. id4(a.uid)
      .. ') by uid ' .. id4(c.uid))
  end
  if has(128) then perm_check_access(a, ino8, c, 2, 'truncate') end
  if has(2) and not root and not (c.uid == a.uid and vuid == a.uid) then denied('chown') end
  local new_gid = a.gid
  if has(4) then new_gid = vgid end
  if has(4) and not root
    and not (c.uid == a.uid and (vgid == a.gid or perm_in_group(c, vgid))) then
    denied('chgrp')
  end
  local mode = a.mode
  if has(1) then
    if not owner then denied('chmod') end
    mode = bit.band(vmode, 4095)
    if not root and not perm_in_group(c, new_gid) and bit.band(mode, 1024) ~= 0 then
      mode = mode - 1024
    end
  end
  local now_a, now_m = has(32), has(64)
  if has(8) or has(16) or now_a ~= now_m then
    if not owner then denied('setting the times') end
  elseif now_a and now_m and not owner and not perm_permits(a, c, 2) then
    fail('PermissionDenied', 'touching the times of inode ' .. dec(ino8) .. ': uid '
      .. id4(c.uid) .. ' is not the owner and cannot write')
  end
  if not has(1) and a.typ ~= T_DIR then
    -- chown(2) clears setuid (and setgid as kill_bits decides) for root too; a truncate as
    -- a write does.
    if has(2) or has(4) then mode = mode - perm_kill_bits(mode, a.gid, c) end
    if has(128) then mode = perm_mode_after_write({ typ = a.typ, mode = mode, gid = a.gid }, c) end
  end
  return mode
end

-- perm::check_xattr_write: setxattr / removexattr of `name` on `a` by `c`. `user.` names
-- only on regular files and directories (EPERM, for root too); then root passes;
-- `trusted.` and `security.` names need root; `user.` names not on a sticky directory of
-- another owner (EPERM); then write permission (EACCES).
local function perm_check_xattr_write(a, ino8, c, name)
  local what = 'changing extended attributes'
  local user = string.sub(name, 1, 5) == 'user.'
  if user and a.typ ~= T_REG and a.typ ~= T_DIR then
    fail('NotPermitted', what .. ' of inode ' .. dec(ino8) .. ' (type ' .. a.typ
      .. '): user. names are for regular files and directories only')
  end
  if c.uid == ROOT4 then return end
  if string.sub(name, 1, 8) == 'trusted.' or string.sub(name, 1, 9) == 'security.' then
    fail('NotPermitted', what .. ' of inode ' .. dec(ino8) .. ': '
      .. string.match(name, '^[^.]*') .. ' names need root')
  end
  if user and a.typ == T_DIR and bit.band(a.mode, 512) ~= 0 and c.uid ~= a.uid then
    fail('NotPermitted', what .. ' of sticky directory ' .. dec(ino8) .. ' owned by uid '
      .. id4(a.uid))
  end
  perm_check_access(a, ino8, c, 2, what)
end

-- logic::moved_parent: the parent field of an inode whose entry moves from `from` to `to`.
-- A directory follows its entry; a non-directory follows only when this was its one link
-- in `from` (with links left there it is named in two directories: parent 0).
local function moved_parent(a, from, to)
  if a.typ == T_DIR then return to end
  if a.parent == from then
    if a.nlink > 1 then return ZERO8 end
    return to
  end
  return a.parent
end

-- Directory entries: members `name \0 entry` of a ZSET with score 0 (byte order = name order).

local function entry_member(name, typ, ino8)
  return name .. '\0' .. VER .. string.char(typ) .. ino8
end

-- The entry `name` of the directory whose entry ZSET is `dkey`, or nil.
local function get_entry(dkey, name)
  local r = redis.call('ZRANGEBYLEX', dkey, '[' .. name .. '\0', '(' .. name .. '\1', 'LIMIT', 0, 1)
  local m = r[1]
  if not m then return nil end
  if #m ~= #name + 11 or string.byte(m, #name + 2) ~= 1 then
    fail('Corrupted', 'entry ' .. show(name) .. ': undecodable')
  end
  local typ = string.byte(m, #name + 3)
  if typ < 1 or typ > 7 then fail('Corrupted', 'entry ' .. show(name) .. ': unknown file type') end
  local ino = string.sub(m, #name + 4)
  if ino == ZERO8 then fail('Corrupted', 'entry ' .. show(name) .. ': points to inode 0') end
  return { member = m, typ = typ, ino = ino }
end

local function has_entries(dkey)
  return redis.call('ZCARD', dkey) > 0
end

-- Counters, limits --------------------------------------------------------------------------

-- True when `v` is decimal text INCRBY / HINCRBY take: a signed 64-bit integer without a
-- leading zero or `+` (anything else would fail the write-back at the end of the call, after
-- the batch's other writes).
local function int64_text(v)
  if v == '0' then return true end
  local digits = string.match(v, '^%-?([1-9]%d*)$')
  return digits ~= nil and (#digits < 19 or (#digits == 19 and digits <= '9223372036854775807'))
end

-- A stored counter's value, checked to be an integer (0 when absent).
local function stored_counter(key, name)
  local v = redis.call('GET', key)
  if not v then return 0 end
  if not int64_text(v) then
    fail('Corrupted', 'counter ' .. name .. ' is not a 64-bit integer')
  end
  return tonumber(v)
end

-- usedSpace / totalInodes as the batch sees them (read once; a check-phase call makes sure
-- the write-back cannot fail).
local function counter(key, name)
  local c = CNT[key]
  if not c then
    c = { v = stored_counter(key, name), d = 0 }
    CNT[key] = c
  end
  return c.v + c.d
end

-- Adds `delta` to a counter `counter` has read in the check phase.
local function add_counter(key, delta)
  local c = CNT[key]
  c.d = c.d + delta
end

-- The volume's limits (capacity bytes, inode count; 0 = unlimited) and whether it keeps
-- directory statistics, from the limits record "capacity inodes dir_stats" (dir_stats 0 or 1;
-- a record without it, written before directory statistics existed, means 0).
local function limits()
  if not LIMITS then
    local v = redis.call('GET', S.limits)
    if not v then fail('NotFound', 'volume is not formatted (no limits record)') end
    local c, i = string.match(v, '^(%d+) (%d+)$')
    local f = '0'
    if not c then c, i, f = string.match(v, '^(%d+) (%d+) ([01])$') end
    if not c then fail('Corrupted', 'undecodable limits record') end
    LIMITS = { tonumber(c), tonumber(i), f == '1' }
    DSON = LIMITS[3]
  end
  return LIMITS[1], LIMITS[2], LIMITS[3]
end

-- logic::check_quota.
local function check_quota(sp, inodes)
  local cap, lim = limits()
  if cap > 0 and sp > 0 then
    local used = counter(S.used, 'usedSpace')
    if used + sp > cap then
      fail('NoSpace', 'capacity ' .. num(cap) .. ' bytes reached (' .. num(used) .. ' used)')
    end
  end
  if lim > 0 and inodes > 0 then
    local used = counter(S.total, 'totalInodes')
    if used + inodes > lim then fail('NoSpace', 'inode limit ' .. num(lim) .. ' reached') end
  end
end

-- A check-phase read that makes later writes of Redis type `typ` ('set', 'hash', 'zset')
-- to `key` safe: Redis keeps the writes a script made before an error, so a key holding
-- another type must fail the op here, before its first write. Once per batch and key (ops
-- only ever store one type in each key).
local function check_type(key, typ)
  if SETS[key] then return end
  local t = redis.call('TYPE', key)
  if type(t) == 'table' then t = t.ok end
  if t ~= 'none' and t ~= typ then
    fail('Corrupted', 'key ' .. key .. ' holds a ' .. tostring(t) .. ' where a ' .. typ .. ' belongs')
  end
  SETS[key] = true
end

local function check_set(key)
  check_type(key, 'set')
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
-- directory's record (HGET, once per batch) and checks that it decodes. In its write phase it
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
    DSV[dir8] = v
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
  if QCH[ino8] then QCH, QDEP = {}, {} end
end

-- Directory `dir8`'s statistics record names `parent8` as its parent from now on (mknod,
-- rename, restore of a directory; the op read its record in its check phase, unless new).
local function stat_parent(dir8, parent8)
  if not DSON or dir8 == ROOT8 or parent8 == ZERO8 then return end
  local t = DS[dir8] or stat_entry(dir8)
  t[7] = parent8
  -- The memoized quota chains through it go (every directory of a memoized chain's walk is
  -- memoized itself: see `quota_chain`).
  if QCH[dir8] then QCH, QDEP = {}, {} end
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

-- Directory quotas (meta_core::quota) -------------------------------------------------------
--
-- One hash per volume (S.quotas): directory ino8 -> a 40-byte record (QUOTA_REC). The
-- quotas above a directory are found by walking its parents in the statistics records
-- (`dir_parent`), only on a volume that has quotas (`has_quotas`: one HLEN per call), so
-- ops on a volume without any pay nothing more. On a volume with at most QALL_MAX quotas
-- the call reads the whole hash once (HGETALL) instead of one HGET per directory it looks
-- at, and it memoizes each directory's chain of quotas (`quota_chain`), so an op whose
-- directory an earlier op of the call charged does not walk again. An op checks its quota
-- changes in its check phase (`restat_check`, `check_uncharged_entry`, set_quota,
-- remove_quota): it stages the creation or removal of a quota, and changes a usage in place
-- with an undo log; batch.lua commits both when the op succeeds, else undoes them
-- (`quota_end`), and `flush_quotas` writes the changed records at the end of the call.

-- The most quotas a volume may have for a call to read its quotas hash whole: HGETALL costs
-- about two HGETs of one field, and a walk to the root looks at two directories or more.
local QALL_MAX = 2

-- An empty chain of quotas (shared: never changed).
local NOQ = {}

-- TxnView::has_quotas: whether the volume has a quota, as the running op sees it.
local function has_quotas()
  if QN == nil then QN = redis.call('HLEN', S.quotas) end
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
    local msh, msl, mih, mil, ih, il, lh, ll, sh, sl = struct.unpack(QUOTA_REC, v)
    q = { ih, il, lh, ll, sh, sl, msh, msl, mih, mil }
  end
  QC[dir8] = q
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
  QCH, QDEP = {}, {}
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
    if not q then QC[dir8] = false end
  end
  if q then quota_stage(dir8, false, true) end
end

-- After an op that failed having changed usages (batch.lua; one that succeeded just
-- empties the log): the usages go back, newest first, and the quotas it was the first of
-- the call to change are no longer to be written.
local function quota_undo()
  for i = 8 * QUN - 15, 1, -8 do
    local q = QU[i]
    q[1], q[2], q[3], q[4], q[5], q[6] = QU[i + 2], QU[i + 3], QU[i + 4], QU[i + 5],
      QU[i + 6], QU[i + 7]
    local d = QU[i + 1]
    if d then
      QDIRTY[d] = nil
      QLIST[#QLIST] = nil
    end
  end
  UQ[1], UQ[2], UQ[3], UQ[4], UQ[5], UQ[6] = U1, U2, U3, U4, U5, U6
  if UD then
    QDIRTY[UD] = nil
    QLIST[#QLIST] = nil
  end
  QUN, UQ, UD = 0, nil, nil
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
    QCH, QDEP = {}, {}
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
-- (a table the caller must not change). Memoized per call for every directory of a walk
-- that reaches the root (QCH, with its depth in QDEP), so a walk stops at the first
-- memoized directory: a directory without a quota shares its parent's chain. The memo holds
-- while no quota is created or removed (`quota_stage`, `quota_end`) and no memoized
-- directory's parent changes (`stat_parent`, `stat_reset`): nothing else changes what the
-- walk reads (a quota's usage is not part of a chain). The walk checks what quota::chain
-- checks in the same order (a quota record that does not decode, a missing parent, more
-- than MAX_DEPTH directories on the way, memoized ones included). Callers test QCH first:
-- `QCH[d] or quota_chain(d)`.
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
        QCH[dir8], QDEP[dir8] = base, depth
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
-- compared as i64 with the new usage), then becomes the usage: in place, the op's undo log (the quota, its
-- directory when this made it the call's to write, the old usage) keeping the old one
-- until batch.lua knows whether the op succeeded (`quota_undo`). The new usage is
-- DirStat's saturating addition (i64_norm, called only when a half overflows).
local function quota_add(qd, ih, il, lh, ll, sh, sl)
  if ih == 0 and il == 0 and lh == 0 and ll == 0 and sh == 0 and sl == 0 then return end
  local q
  if QST then q = QST[qd] end
  if q == nil then q = QC[qd] end
  if not q then q = quota_get(qd) end
  local u1, u2, u3, u4, u5, u6 = q[1], q[2], q[3], q[4], q[5], q[6]
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
    UQ, UD, U1, U2, U3, U4, U5, U6 = q, first, u1, u2, u3, u4, u5, u6
  else
    n = 8 * n - 8
    QU[n + 1], QU[n + 2], QU[n + 3], QU[n + 4], QU[n + 5], QU[n + 6], QU[n + 7], QU[n + 8] =
      q, first, u1, u2, u3, u4, u5, u6
  end
  QUN = QUN + 1
  q[1], q[2], q[5], q[6] = a1, a2, c1, c2
  if lh ~= 0 or ll ~= 0 then q[3], q[4] = b1, b2 end
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
-- first), added with DirStat's saturation as on_recharge adds them up.
local function restat_check(ino8, before, after)
  if QN == 0 and QND == 0 then return end -- (known: no quota)
  -- (quota_on, inline.)
  if DSON == nil then limits() end
  if not DSON then return end
  if QN == nil then QN = redis.call('HLEN', S.quotas) end
  if QN + QND <= 0 then return end
  local d, dh, dl, dsh, dsl, e, eh, el, esh, esl
  if before then d, dh, dl, dsh, dsl = charge(ino8, before) end
  if after then e, eh, el, esh, esl = charge(ino8, after) end
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

-- The charge-relevant attributes (see `charge`) of `a` with another length or parent: the
-- "after" of restat_check.
local function charged_as(a, length, parent)
  return { typ = a.typ, nlink = a.nlink, length = length or a.length, parent = parent or a.parent }
end

-- Both counters an op that creates or deletes an inode adds to, read (and checked) in the
-- check phase.
local function check_counters()
  counter(S.used, 'usedSpace')
  counter(S.total, 'totalInodes')
end

-- The check phase of an op that may delete an inode (delete_inode): the counters, and the
-- pending-files hash a regular file with data goes to; `dir` when a directory may be among
-- the deleted (its statistics record and its quota go: the limits, the statistics hash and
-- the quotas hash are checked).
local function check_deletion(dir)
  check_counters()
  check_type(S.pf, 'hash')
  if dir then
    stat_check(ZERO8)
    has_quotas()
  end
end

-- Deleting an inode (logic::delete_inode): attributes, symlink target, xattrs and directory
-- statistics go, and a directory's quota; a regular file with data becomes pending deletion
-- (its chunks stay until ClearPendingFile). The caller ran check_counters in its check
-- phase (check_deletion for a directory).
local function delete_inode(kattr, ksymlink, kxattr, ino8, a)
  del_attr(kattr)
  if a.typ == T_DIR then
    stat_reset(ino8)
    if has_quotas() then quota_drop(ino8) end
  end
  if a.typ == T_LNK then
    redis.call('DEL', ksymlink, kxattr)
  else
    redis.call('DEL', kxattr)
  end
  if a.typ == T_REG and a.length ~= ZERO8 then
    redis.call('HSET', S.pf, ino8, a.length)
  end
  add_counter(S.used, -space(a))
  add_counter(S.total, -1)
end

-- Chunks: `VER .. slices` strings, 24 bytes per slice. Chunk 0 (most files' only chunk) is
-- found by its key; the indexes of the others are in the inode's chunk index ZSET ---------

local function index_chunk(kindex, indx)
  if indx ~= 0 then redis.call('ZADD', kindex, indx, indx) end
end

local function unindex_chunk(kindex, indx)
  if indx ~= 0 and indx ~= '0' then redis.call('ZREM', kindex, indx) end
end

-- An inode's chunk indexes from `from` on (decimal strings, increasing): chunk 0 when its key
-- `key0` exists, then the indexed ones.
local function chunk_indexes(kindex, from, key0)
  local idxs = redis.call('ZRANGEBYSCORE', kindex, math.max(from, 1), '+inf')
  if from == 0 and redis.call('EXISTS', key0) == 1 then table.insert(idxs, 1, '0') end
  return idxs
end

local function check_chunk(v, what)
  if #v < 1 or string.byte(v, 1) ~= 1 or (#v - 1) % 24 ~= 0 then
    fail('Corrupted', what .. ': undecodable chunk (' .. #v .. ' bytes)')
  end
end

-- The chunk keys of an inode, decimal index -> key: those the client listed (`indexes`: u32
-- each, keys from K[first] on, chunk 0 always among them when the op starts at chunk 0; an
-- index found that is not listed asks for a retry), or, when it listed none (`indexes`
-- nil), derived for any index.
local function chunk_keys(ino8, indexes, K, first)
  if not indexes then
    return setmetatable({}, { __index = function(_, idx) return chunk_key(ino8, idx) end })
  end
  local out = {}
  for i = 1, #indexes / 4 do
    out[tostring(struct.unpack('>I4', indexes, 4 * i - 3))] = K[first + i - 1]
  end
  return out
end

-- logic::truncate_to, check phase. `t`: a (attributes), ino, length (8 bytes), cut_indx,
-- cut, kindex (chunk index ZSET), chunk_keys (decimal index -> key). Returns the plan for
-- truncate_apply.
local function truncate_check(t)
  local delta = align(t.length) - align(t.a.length)
  check_quota(delta, 0)
  local plan = { chunks = {}, pending = {}, delta = delta }
  if u64_lt(t.length, t.a.length) then
    local idxs = chunk_indexes(t.kindex, t.cut_indx, t.chunk_keys['0'])
    for _, idx in ipairs(idxs) do
      local key = t.chunk_keys[idx]
      if not key then retry('the chunks of inode ' .. dec(t.ino) .. ' changed') end
      local v = redis.call('GET', key) or VER
      check_chunk(v, 'chunk ' .. idx .. ' of inode ' .. dec(t.ino))
      local keep_before = 0
      if tonumber(idx) == t.cut_indx then keep_before = t.cut end
      local kept = {}
      for o = 2, #v, 24 do
        local pos, id8, size4, len = struct.unpack('>I4c8c4xxxxI4', v, o)
        if pos >= keep_before then
          if id8 ~= ZERO8 then plan.pending[#plan.pending + 1] = { id8, size4 } end
        else
          if pos + len > keep_before then len = keep_before - pos end
          kept[#kept + 1] = string.sub(v, o, o + 19) .. struct.pack('>I4', len)
        end
      end
      plan.chunks[#plan.chunks + 1] = { key = key, idx = idx, kept = table.concat(kept) }
    end
  end
  if delta ~= 0 then counter(S.used, 'usedSpace') end
  if #plan.pending > 0 then check_type(S.ps, 'hash') end
  if t.length ~= t.a.length then
    stat_check_attr(t.ino, t.a)
    if quota_on() then restat_check(t.ino, t.a, charged_as(t.a, t.length)) end
  end
  return plan
end

-- logic::truncate_to, write phase: rewrites chunks, records dropped slices, sets
-- length/mtime/ctime on `t.a` (the caller stores it), adjusts usedSpace and the directory
-- statistics.
local function truncate_apply(t, plan, time)
  local before = stat_snap(t.a)
  for _, c in ipairs(plan.chunks) do
    if c.kept == '' then
      redis.call('DEL', c.key)
      unindex_chunk(t.kindex, c.idx)
    else
      redis.call('SET', c.key, VER .. c.kept)
    end
  end
  for _, p in ipairs(plan.pending) do
    redis.call('HSET', S.ps, p[1], p[2])
  end
  t.a.length = t.length
  t.a.mtime = time
  t.a.ctime = time
  if plan.delta ~= 0 then add_counter(S.used, plan.delta) end
  restat(t.ino, before, t.a)
end

-- Appends `slice` (24 bytes) to chunk `indx` (check phase: the stored chunk must decode, as
-- meta_core::kv's append_slice checks; only its first byte and length are needed for that).
-- Returns the write-phase function.
local function append_slice(kchunk, kindex, indx, slice, ino8)
  local size = redis.call('STRLEN', kchunk)
  if size > 0 and (redis.call('GETRANGE', kchunk, 0, 0) ~= VER or (size - 1) % 24 ~= 0) then
    fail('Corrupted', 'chunk ' .. indx .. ' of inode ' .. dec(ino8) .. ': undecodable (' .. size .. ' bytes)')
  end
  if indx ~= 0 then check_type(kindex, 'zset') end
  return function()
    if size > 0 then
      redis.call('APPEND', kchunk, slice)
    else
      redis.call('SET', kchunk, VER .. slice)
    end
    index_chunk(kindex, indx)
  end
end

-- Writes chunks verbatim (restore, restore_pending): `arg` = u32 index .. slices (24 bytes
-- each; none = the chunk is deleted), `key` its chunk key, `kindex` the chunk index (whose
-- type the caller checked).
local function put_chunk(key, kindex, arg)
  local idx = struct.unpack('>I4', arg)
  if #arg == 4 then
    redis.call('DEL', key)
    unindex_chunk(kindex, idx)
  else
    redis.call('SET', key, VER .. string.sub(arg, 5))
    index_chunk(kindex, idx)
  end
end

-- Sessions, open files, locks (meta_core::logic::session) -------------------------------------

-- logic::session::live_session: the session's record must exist.
-- Checked once per batch and session: only close_session removes a session record, and it
-- forgets it here.
local function live_session(sid8)
  if LIVE[sid8] then return end
  if redis.call('HEXISTS', S.sessions, sid8) == 0 then
    fail('NotFound', 'session ' .. dec(sid8) .. ' does not exist (closed, or cleaned up after it expired)')
  end
  LIVE[sid8] = true
end

local function forget_session(sid8)
  LIVE[sid8] = nil
end



-- Whether some session holds an inode open (its openers SET is not empty). A check-phase
-- read: a wrong-type key fails here, before any write.
local function is_open(kopeners)
  return redis.call('SCARD', kopeners) > 0
end

-- logic::remove_inode, sustained case: the last link went while the inode is open; it stays
-- with nlink 0 and ctime `time`. Returns the encoded attributes.
local function sustain_inode(kattr, a, time)
  a.nlink = 0
  a.ctime = time
  return put_attr(kattr, a)
end

-- logic::namespace::remove_inode: the last link of inode `ino8` (attributes `a`) is gone; it
-- is charged to no directory from now on (a directory's quota goes), and is kept (`sustain`:
-- some session holds it open) or deleted. Write phase: the op ran stat_check_attr,
-- restat_check, has_quotas for a directory, and check_deletion unless sustained. Returns the
-- sustained inode's encoded attributes, or false when deleted.
local function remove_inode(kattr, ksymlink, kxattr, ino8, a, sustain, time)
  restat(ino8, a, nil)
  if a.typ == T_DIR and has_quotas() then quota_drop(ino8) end
  if sustain then return sustain_inode(kattr, a, time) end
  delete_inode(kattr, ksymlink, kxattr, ino8, a)
  return false
end

-- The fields of a lock hash that belong to session `sid8` (fields are sid8 .. owner8).
local function session_fields(klocks, sid8)
  local out = {}
  for _, f in ipairs(redis.call('HKEYS', klocks)) do
    if string.sub(f, 1, 8) == sid8 then out[#out + 1] = f end
  end
  return out
end

-- The 8-byte numbers packed in `s`, each followed by `extra` bytes: { {n8, rest}, ... }.
local function records(s, extra)
  local out, w = {}, 8 + extra
  for o = 1, #s, w do
    out[#out + 1] = { string.sub(s, o, o + 7), string.sub(s, o + 8, o + w - 1) }
  end
  return out
end

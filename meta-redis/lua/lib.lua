-- lib.lua: what the op bodies (ops/*.lua) share: errors, the batch's state and caches, the
-- attribute codec, directory entries, counters and limits. The rest of the library follows it
-- in this order (see src/scripts.rs): perm.lua (meta_core::perm's permission rules),
-- stats.lua (directory statistics), quota.lua (directory quotas), files.lua (inode
-- deletion, chunks, sessions), then the op bodies and batch.lua (the entry point, which
-- writes the caches back). The files form one Lua chunk: a name is visible in the files
-- after the one defining it.
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
-- Attributes are written in meta_core::kv's compact form (version 2: type, mode u16, uid, gid,
-- nlink u32, flags u8, a shape byte, ctime as i64 seconds + u32 nanoseconds, parent u64, then
-- mtime, atime, length u64 and rdev u32 only where the shape byte says they are not implied:
-- 38 bytes for a new empty file, which Redis keeps inline with the key's object); the
-- 73-byte form (version 1) of volumes written before is read too. Within a batch they are read once and written once: `get_attr` / `put_attr` / `del_attr` go
-- through a cache that `flush_batch` writes back (one MSET, one DEL) when the batch ends;
-- the usedSpace and totalInodes counters likewise (one INCRBY each), and the changes to
-- directory statistics (one HSET, one HDEL; see `flush_stats`). Attribute keys are never
-- touched any other way inside a batch.
--
-- Arguments to `redis.call` are strings, never Lua numbers ('0', not 0): Redis formats a
-- number argument with snprintf("%.17g"), ≈ 2,000 server instructions each, which was 4 % of
-- a create (three per create: the entry's score and the lookup's LIMIT 0 1).

local T_REG, T_DIR, T_LNK = 1, 2, 3
local U32MAX = 4294967295
local ZERO4 = '\0\0\0\0'
-- The 73-byte form (version 1), read only.
local ATTR = '>BBHc4c4c4c12c12c12I4c8c8c1'
-- The nanoseconds of its three times (bytes 25..28, 37..40, 49..52).
local ATTR_NS = '>' .. 'xxxxxxxxxxxxxxxxxxxxxxxx' .. 'I4xxxxxxxxI4xxxxxxxxI4'
-- The fixed part of the compact form (version 2): version, type, mode, uid, gid, nlink,
-- flags, shape, ctime, parent (38 bytes).
local ATTR2 = '>BBHc4c4I4c1Bc12c8'

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

-- Shared keys of the batch (KEYS[1..9]): limits, usedSpace, totalInodes, sessions, pending
-- files, pending slices, directory statistics, directory quotas, their owner (see
-- `stats_load`); the volume's key tag
-- `{prefix}` (ARGV[2]) and whether keys are strict (ARGV[4] 's': no undeclared key).
local S = {}
local AC = {}      -- attribute key -> encoded attributes, or false when absent / deleted
local AD = {}      -- attribute key -> the decoded (checked) form of AC's value, once decoded
local DSET = {}    -- attribute keys written by the batch
local DLIST = {}   -- the same, in order
local CNT = {}     -- counter key -> { v = stored value, d = delta of the batch }
local LIMITS = nil -- the limits record once read (`limits`)
local DS = {}      -- directory ino8 -> the batch's changes to its statistics (see `restat`)
local DSLIST = {}  -- the same directories, in order
local DSV = {}     -- directory ino8 -> its stored statistics record as read (false: none)
local DSD = {}     -- directory ino8 -> DSV's record decoded, when the last flush wrote it
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
local QUN = 0      -- entries in the running op's undo log of usage changes (see `quota_add`)
local QU = {}      -- the log, 9 slots per entry
local QCH = {}     -- directory ino8 -> its `quota_chain` (a table never changed), memoized
local QDEP = {}    -- directory ino8 in QCH -> the directories on its way to the root, both included
local QWAY = {}    -- scratch of `quota_chain`: the directories of its walk (past its count: stale)
local QCHN = 0     -- directories in QCH
local DSVN = 0     -- directories in DSV (at most: those deleted since are not counted off)
local QCN = 0      -- directories in QC (the same)
local OWNED = nil  -- whether this library owns the volume's statistics (`stats_load`); nil: unknown
local KEEP = true  -- whether DSV, QN and QCH may be kept for the next call (not the scripts way)
-- Kept from call to call (see `stats_load`): Redis Functions run the library's code once, at
-- FUNCTION LOAD, so these live as long as the library does (the scripts way runs it per call).
local MEMO = {}    -- volume key tag -> { DSV, DSD, DSVN, QN, QCH, QDEP, QCHN, QC, QRAW, QCN }
                   -- (and [0]: such a table taken out by `stats_load`, to serve again)
local MEMON = 0    -- volumes in MEMO
local MYID = nil   -- this library's name as an owner (`stats_load`)

local function begin_batch(keys, tag, flags, once)
  S = { limits = keys[1], used = keys[2], total = keys[3], sessions = keys[4], pf = keys[5],
    ps = keys[6], stats = keys[7], quotas = keys[8], owner = keys[9], tag = tag,
    strict = flags == 's' }
  AC, AD, DSET, DLIST, CNT, LIMITS, LIVE, SETS = {}, {}, {}, {}, {}, nil, {}, {}
  DS, DSLIST, DSV, DSD, DSON = {}, {}, {}, {}, nil
  QC, QRAW, QLIST, QDIRTY, QST, QSTX, QN, QND = {}, nil, {}, {}, nil, false, nil, 0
  QUN, QCH, QDEP, QCHN, DSVN, QCN, OWNED, KEEP = 0, {}, {}, 0, 0, 0, nil, not once
end

-- The memoized quota chains (QCH) go: a memoized directory moved or went, or the running op
-- staged a quota's creation or removal (`quota_stage`), or failed having done so.
local function chains_reset()
  QCH, QDEP, QCHN = {}, {}, 0
end

-- The key of kind `kind` of an inode (crate::layout::Layout: `{prefix}` kind decimal inode).
local function ikey(kind, ino8)
  return S.tag .. kind .. dec(ino8)
end

-- The attribute, symlink, xattr, openers, entries and kept openers keys of an inode.
local function inode_keys(ino8)
  local t, n = S.tag, dec(ino8)
  return t .. 'i' .. n, t .. 's' .. n, t .. 'x' .. n, t .. 'o' .. n, t .. 'd' .. n, t .. 'u' .. n
end

-- The key of chunk `indx` of an inode.
local function chunk_key(ino8, indx)
  return S.tag .. 'c' .. dec(ino8) .. '_' .. indx
end

-- Attributes --------------------------------------------------------------------------------

local function bad_attr(ino8, why)
  fail('Corrupted', 'inode ' .. dec(ino8) .. ': ' .. why)
end

-- Decodes either form (meta_core::kv::decode_attr): the compact one (version 2) this
-- library writes, or the 73-byte one (version 1) of volumes written before it.
local function dec_attr(v, ino8)
  local n = #v
  local ver, typ, mode, uid, gid, rdev, at, mt, ct, nlink, len, parent, flags
  local hint = 0
  if string.byte(v, 1) == 2 and n >= 38 then
    local shape
    ver, typ, mode, uid, gid, nlink, flags, shape, ct, parent = struct.unpack(ATTR2, v)
    if shape >= 16 then
      -- The hint bits (HINT.NO_XATTRS 16, HINT.NEVER_OPENED 32) are kept apart.
      if shape >= 64 then bad_attr(ino8, 'unknown attribute shape bits ' .. shape) end
      hint = shape - shape % 16
      shape = shape % 16
    end
    local pos = 39
    mt, at, len, rdev = ct, nil, ZERO8, ZERO4
    if shape % 2 == 1 then
      mt = string.sub(v, pos, pos + 11)
      pos = pos + 12
      if mt == ct then bad_attr(ino8, 'attributes not in canonical compact form') end
    end
    at = mt
    if shape % 4 >= 2 then
      at = string.sub(v, pos, pos + 11)
      pos = pos + 12
      if at == mt then bad_attr(ino8, 'attributes not in canonical compact form') end
    end
    if shape % 8 >= 4 then
      len = string.sub(v, pos, pos + 7)
      pos = pos + 8
      if len == ZERO8 then bad_attr(ino8, 'attributes not in canonical compact form') end
    end
    if shape >= 8 then
      rdev = string.sub(v, pos, pos + 3)
      pos = pos + 4
      if rdev == ZERO4 then bad_attr(ino8, 'attributes not in canonical compact form') end
    end
    if pos ~= n + 1 then bad_attr(ino8, 'undecodable attributes (' .. n .. ' bytes)') end
    -- (Each 12-byte time: i64 seconds, then u32 nanoseconds; only the stored ones checked.)
    if struct.unpack('>I4', ct, 9) >= 1000000000
      or (mt ~= ct and struct.unpack('>I4', mt, 9) >= 1000000000)
      or (at ~= mt and struct.unpack('>I4', at, 9) >= 1000000000) then
      bad_attr(ino8, 'bad nanoseconds')
    end
  else
    if n ~= 73 then bad_attr(ino8, 'undecodable attributes (' .. n .. ' bytes)') end
    ver, typ, mode, uid, gid, rdev, at, mt, ct, nlink, len, parent, flags = struct.unpack(ATTR, v)
    if ver ~= 1 then bad_attr(ino8, 'undecodable attributes (version ' .. ver .. ')') end
    local an, mn, cn = struct.unpack(ATTR_NS, v)
    if an >= 1000000000 or mn >= 1000000000 or cn >= 1000000000 then
      bad_attr(ino8, 'bad nanoseconds')
    end
  end
  if typ < 1 or typ > 7 then bad_attr(ino8, 'unknown file type code ' .. typ) end
  return { typ = typ, mode = mode, uid = uid, gid = gid, rdev = rdev, atime = at, mtime = mt,
    ctime = ct, nlink = nlink, length = len, parent = parent, flags = flags, hintbits = hint }
end

-- Encodes the compact form (meta_core::kv::encode_attr_compact): the fixed part, then mtime
-- if not ctime, atime if not mtime, the length if not 0, rdev if not 0; the shape byte also
-- carries the hints `a.hintbits` (see below).
local function enc_attr(a)
  local ct, mt, at = a.ctime, a.mtime, a.atime
  local shape, tail = a.hintbits, ''
  if mt ~= ct then shape, tail = shape + 1, mt end
  if at ~= mt then shape, tail = shape + 2, tail .. at end
  if a.length ~= ZERO8 then shape, tail = shape + 4, tail .. a.length end
  if a.rdev ~= ZERO4 then shape, tail = shape + 8, tail .. a.rdev end
  return struct.pack(ATTR2, 2, a.typ, a.mode, a.uid, a.gid, a.nlink, a.flags, shape, ct,
    a.parent) .. tail
end

-- Hints in the attributes' shape byte (meta_core::kv::HINT_*), facts about keys beside the
-- record that spare an op a Redis command: HINT.NO_XATTRS, the inode's xattr hash was never
-- written (a deletion need not DEL it); HINT.NEVER_OPENED, its openers sets were never
-- written (removing its last name need not SCARD them). Only mknod sets them, in the record
-- it creates (for free: it writes the record anyway); setxattr and open clear theirs in the
-- op that writes the key the hint is about. A record without a hint (the 73-byte form, one
-- written before the hints, or a restored one) says nothing, and the op does the command.
-- A decoded record (and mknod's new one) keeps the sum of its hints in `a.hintbits` (0, 16,
-- 32 or 48); the hot paths test it inline (`a.hintbits >= 32`, `a.hintbits % 32 >= 16`), a
-- function call costing more than the test. The field's name is chosen for Lua 5.1's string
-- hash: `hintbits` falls in a slot of the 16-slot table that the other twelve fields leave
-- free (`hint` fell on a slot that a colliding field had taken, and an unlink cost ≈ 1.4k
-- instructions more, by callgrind). (One table, not more locals: a Lua chunk has at most
-- 200, and the library's main chunk is within a few of it.)
local HINT = { NO_XATTRS = 16, NEVER_OPENED = 32 }

-- Attributes `a` without hint `h`; true when it had it (the record must be written again).
function HINT.clear(a, h)
  if a.hintbits % (2 * h) < h then return false end
  a.hintbits = a.hintbits - h
  return true
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
  local r = redis.call('ZRANGEBYLEX', dkey, '[' .. name .. '\0', '(' .. name .. '\1', 'LIMIT', '0', '1')
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
  if v == '0' or v == '-9223372036854775808' then return true end
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
-- a record without it, written before directory statistics existed, means 0). Read once per
-- call: LIMITS = { capacity, inodes, dir_stats, fenced (the fourth field: see
-- `stats_claim`), the record }.
local limits
do
  -- What may follow "capacity inodes": { dir_stats, fenced }.
  local TAIL = { [''] = { false, false }, [' 0'] = { false, false }, [' 1'] = { true, false },
    [' 0 1'] = { false, true }, [' 1 1'] = { true, true } }
  limits = function()
    if not LIMITS then
      local v = redis.call('GET', S.limits)
      if not v then fail('NotFound', 'volume is not formatted (no limits record)') end
      local c, i, rest = string.match(v, '^(%d+) (%d+)(.*)$')
      local t = c and TAIL[rest]
      if not t then fail('Corrupted', 'undecodable limits record') end
      LIMITS = { tonumber(c), tonumber(i), t[1], t[2], v }
      DSON = t[1]
    end
    return LIMITS[1], LIMITS[2], LIMITS[3]
  end
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

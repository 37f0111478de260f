-- lib.lua: helpers shared by every mutating script. The Rust side prepends this file to each
-- `<op>.lua`, so every script is self-contained (one SHA per op).
--
-- Conventions (see the crate README, "Scripts"):
--   KEYS[1]  the round's sequence token: op number ARGV[1] of a round of ARGV[2] ops runs only
--            when the token says every earlier op of the round has run (see run_op below).
--   ARGV[1]  this op's number in the round (0-based), ARGV[2] the number of ops in the round.
-- Replies: {'ok', ...}            the op took effect; payload per script
--          {'err', kind, message} a POSIX outcome; nothing was written
--          {'retry', message}     a key read beforehand changed; nothing was written
--          {'skip', seq}          an earlier op of the round did not run; nothing was written
-- Values use meta_core::kv's codec: attributes are 73 bytes (version 1, type, mode u16, uid,
-- gid, rdev u32, atime/mtime/ctime as i64 seconds + u32 nanoseconds, nlink u32, length u64,
-- parent u64, flags u8), big-endian. Inode numbers travel as 8-byte big-endian strings, so
-- no 64-bit value ever passes through a Lua number unless it is exact (see `align`).

local ZERO8 = '\0\0\0\0\0\0\0\0'
local ROOT8 = '\0\0\0\0\0\0\0\1'
local VER = '\1'
local T_REG, T_DIR, T_LNK = 1, 2, 3
local U32MAX = 4294967295
local MAX_DEPTH = 100000

-- Ends the op with a POSIX error (only before the first write).
local function fail(kind, msg)
  error({ meta_err = kind, msg = msg }, 0)
end

-- Ends the op asking the client to read its keys again (only before the first write).
local function retry(msg)
  error({ meta_retry = true, msg = msg }, 0)
end

local function u16(s, p)
  local a, b = string.byte(s, p, p + 1)
  return a * 256 + b
end

local function u32(s, p)
  local a, b, c, d = string.byte(s, p, p + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

local function p16(n)
  return string.char(math.floor(n / 256) % 256, n % 256)
end

local function p32(n)
  return string.char(math.floor(n / 16777216) % 256, math.floor(n / 65536) % 256,
    math.floor(n / 256) % 256, n % 256)
end

-- Decimal text of an 8-byte big-endian unsigned integer (exact for every u64).
local function dec(s)
  local hi, lo = u32(s, 1), u32(s, 5)
  if hi < 2097152 then
    return string.format('%.0f', hi * 4294967296 + lo)
  end
  local limbs = { math.floor(hi / 65536), hi % 65536, math.floor(lo / 65536), lo % 65536 }
  local digits = {}
  repeat
    local rem, nonzero = 0, false
    for i = 1, 4 do
      local cur = rem * 65536 + limbs[i]
      limbs[i] = math.floor(cur / 10)
      rem = cur % 10
      if limbs[i] ~= 0 then nonzero = true end
    end
    digits[#digits + 1] = tostring(rem)
  until not nonzero
  local out = {}
  for i = #digits, 1, -1 do out[#out + 1] = digits[i] end
  return table.concat(out)
end

-- a < b for equal-length byte strings (unsigned, big-endian), independent of the locale.
local function bytes_lt(a, b)
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then return x < y end
  end
  return false
end

-- The later of two 12-byte times (signed 64-bit seconds, then unsigned nanoseconds).
local function tmax(a, b)
  if a == b then return a end
  local a1, b1 = string.byte(a, 1), string.byte(b, 1)
  if a1 ~= b1 then
    -- The sign bit flipped makes two's complement order unsigned.
    if (a1 + 128) % 256 < (b1 + 128) % 256 then return b end
    return a
  end
  if bytes_lt(a, b) then return b end
  return a
end

-- `len` rounded up to 4 KiB, at least 4 KiB (meta_core::types::align_space). Exact: the
-- result is a multiple of 4096 below 2^65, which a double holds exactly.
local function align(len8)
  local hi, lo = u32(len8, 1), u32(len8, 5)
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

-- Attributes -------------------------------------------------------------------------------

local function bad_attr(ino8, why)
  fail('Corrupted', 'inode ' .. dec(ino8) .. ': ' .. why)
end

local function dec_attr(v, ino8)
  if not v then return nil end
  if #v ~= 73 or string.byte(v, 1) ~= 1 then
    bad_attr(ino8, 'undecodable attributes (' .. #v .. ' bytes)')
  end
  local typ = string.byte(v, 2)
  if typ < 1 or typ > 7 then bad_attr(ino8, 'unknown file type code ' .. typ) end
  if u32(v, 25) >= 1000000000 or u32(v, 37) >= 1000000000 or u32(v, 49) >= 1000000000 then
    bad_attr(ino8, 'bad nanoseconds')
  end
  return {
    typ = typ,
    mode = u16(v, 3),
    uid = string.sub(v, 5, 8),
    gid = string.sub(v, 9, 12),
    rdev = string.sub(v, 13, 16),
    atime = string.sub(v, 17, 28),
    mtime = string.sub(v, 29, 40),
    ctime = string.sub(v, 41, 52),
    nlink = u32(v, 53),
    length = string.sub(v, 57, 64),
    parent = string.sub(v, 65, 72),
    flags = string.sub(v, 73, 73),
  }
end

local function enc_attr(a)
  return VER .. string.char(a.typ) .. p16(a.mode) .. a.uid .. a.gid .. a.rdev .. a.atime
    .. a.mtime .. a.ctime .. p32(a.nlink) .. a.length .. a.parent .. a.flags
end

local function get_attr(key, ino8)
  return dec_attr(redis.call('GET', key), ino8)
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
  if a.typ == T_REG then return align(a.length) end
  return 4096
end

-- logic::check_sticky.
local function check_sticky(dir, target, caller_uid, what)
  if bit.band(dir.mode, 512) ~= 0 and caller_uid ~= '\0\0\0\0' and caller_uid ~= dir.uid
    and caller_uid ~= target.uid then
    fail('NotPermitted', what .. ': sticky directory owned by uid ' .. u32(dir.uid, 1))
  end
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
  local e = string.sub(m, #name + 2)
  if #e ~= 10 or string.byte(e, 1) ~= 1 then
    fail('Corrupted', 'entry ' .. show(name) .. ': undecodable')
  end
  local typ = string.byte(e, 2)
  if typ < 1 or typ > 7 then fail('Corrupted', 'entry ' .. show(name) .. ': unknown file type') end
  local ino = string.sub(e, 3)
  if ino == ZERO8 then fail('Corrupted', 'entry ' .. show(name) .. ': points to inode 0') end
  return { member = m, typ = typ, ino = ino }
end

local function has_entries(dkey)
  return redis.call('ZCARD', dkey) > 0
end

-- Counters, limits --------------------------------------------------------------------------

local function counter(key, name)
  local v = redis.call('GET', key)
  if not v then return 0 end
  if not string.match(v, '^%-?%d+$') then
    fail('Corrupted', 'counter ' .. name .. ' is not an integer')
  end
  return tonumber(v)
end

-- The volume's limits (capacity bytes, inode count; 0 = unlimited).
local function limits(key)
  local v = redis.call('GET', key)
  if not v then fail('NotFound', 'volume is not formatted (no limits record)') end
  local c, i = string.match(v, '^(%d+) (%d+)$')
  if not c then fail('Corrupted', 'undecodable limits record') end
  return tonumber(c), tonumber(i)
end

-- logic::check_quota.
local function check_quota(klimits, kused, ktotal, sp, inodes)
  local cap, lim = limits(klimits)
  if cap > 0 and sp > 0 then
    local used = counter(kused, 'usedSpace')
    if used + sp > cap then
      fail('NoSpace', 'capacity ' .. num(cap) .. ' bytes reached (' .. num(used) .. ' used)')
    end
  end
  if lim > 0 and inodes > 0 then
    local used = counter(ktotal, 'totalInodes')
    if used + inodes > lim then fail('NoSpace', 'inode limit ' .. num(lim) .. ' reached') end
  end
end

-- Deleting an inode (logic::delete_inode) -----------------------------------------------------

-- Check phase: the counters it adds to must be integers.
local function can_delete_inode(kused, ktotal)
  counter(kused, 'usedSpace')
  counter(ktotal, 'totalInodes')
end

-- Write phase: attributes, symlink target and xattrs go; a regular file with data becomes
-- pending deletion (its chunks stay until ClearPendingFile).
local function delete_inode(k, ino8, a)
  redis.call('DEL', k.attr, k.symlink, k.xattr)
  redis.call('ZREM', k.inodes, ino8)
  if a.typ == T_REG and a.length ~= ZERO8 then
    redis.call('HSET', k.pf, ino8, a.length)
  end
  redis.call('INCRBY', k.used, num(-space(a)))
  redis.call('INCRBY', k.total, -1)
end

-- Chunks: `VER .. slices` strings, 24 bytes per slice; a ZSET of chunk indexes per inode ----

local function check_chunk(v, what)
  if #v < 1 or string.byte(v, 1) ~= 1 or (#v - 1) % 24 ~= 0 then
    fail('Corrupted', what .. ': undecodable chunk (' .. #v .. ' bytes)')
  end
end

-- logic::truncate_to, check phase. `t` holds: attr a, length8, argerr kind/msg, cut_indx,
-- cut, the chunk index ZSET key, chunk keys by index (decimal), limits/used/total keys.
-- Returns the plan for truncate_apply.
local function truncate_check(t)
  if t.errkind ~= '' then fail(t.errkind, t.errmsg) end
  local delta = align(t.length) - align(t.a.length)
  check_quota(t.klimits, t.kused, t.ktotal, delta, 0)
  local plan = { chunks = {}, pending = {}, delta = delta }
  if bytes_lt(t.length, t.a.length) then
    local idxs = redis.call('ZRANGEBYSCORE', t.kindex, t.cut_indx, '+inf')
    for _, idx in ipairs(idxs) do
      local key = t.chunk_keys[idx]
      if not key then retry('the chunks of inode ' .. dec(t.ino) .. ' changed') end
      local v = redis.call('GET', key) or VER
      check_chunk(v, 'chunk ' .. idx .. ' of inode ' .. dec(t.ino))
      local keep_before = 0
      if tonumber(idx) == t.cut_indx then keep_before = t.cut end
      local kept = {}
      for o = 2, #v, 24 do
        local pos, id8, size4 = u32(v, o), string.sub(v, o + 4, o + 11), string.sub(v, o + 12, o + 15)
        local len = u32(v, o + 20)
        if pos >= keep_before then
          if id8 ~= ZERO8 then plan.pending[#plan.pending + 1] = { id8, size4 } end
        else
          if pos + len > keep_before then len = keep_before - pos end
          kept[#kept + 1] = string.sub(v, o, o + 19) .. p32(len)
        end
      end
      plan.chunks[#plan.chunks + 1] = { key = key, idx = idx, kept = table.concat(kept) }
    end
  end
  if delta ~= 0 then counter(t.kused, 'usedSpace') end
  return plan
end

-- logic::truncate_to, write phase: rewrites chunks, records dropped slices, sets
-- length/mtime/ctime on `a` (the caller stores it), adjusts usedSpace.
local function truncate_apply(t, plan, time)
  for _, c in ipairs(plan.chunks) do
    if c.kept == '' then
      redis.call('DEL', c.key)
      redis.call('ZREM', t.kindex, c.idx)
    else
      redis.call('SET', c.key, VER .. c.kept)
    end
  end
  for _, p in ipairs(plan.pending) do
    redis.call('HSET', t.kps, p[1], p[2])
  end
  t.a.length = t.length
  t.a.mtime = time
  t.a.ctime = time
  if plan.delta ~= 0 then redis.call('INCRBY', t.kused, num(plan.delta)) end
end

-- Sessions, open files, locks (meta_core::logic::session) -------------------------------------

-- logic::session::live_session: the session's record must exist.
local function live_session(ksessions, sid8)
  if redis.call('HEXISTS', ksessions, sid8) == 0 then
    fail('NotFound', 'session ' .. dec(sid8) .. ' does not exist (closed, or cleaned up after it expired)')
  end
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
  local v = enc_attr(a)
  redis.call('SET', kattr, v)
  return v
end

-- The fields of a lock hash that belong to session `sid8` (fields are sid8 .. owner8).
local function session_fields(klocks, sid8)
  local out = {}
  for _, f in ipairs(redis.call('HKEYS', klocks)) do
    if string.sub(f, 1, 8) == sid8 then out[#out + 1] = f end
  end
  return out
end

-- The round protocol ----------------------------------------------------------------------

-- Runs `body` as op ARGV[1] of a round of ARGV[2] ops. The round's token (KEYS[1]) holds the
-- number of ops of the round that have run; an op runs only when it is its turn, so a
-- pipeline whose op i asked for a retry (or was refused with NOSCRIPT) applies nothing after
-- op i, and the client resumes the round at op i. The first op creates the token (with a
-- 60 s expiry), each middle op claims its turn with one INCR (and gives it back with DECR
-- if it does not run), the last op deletes the token; a round cut short leaves it to
-- expire. One INCR rather than GET + SET PX: the token's share of a create's server time
-- fell from 3.6 µs (of 31) to 1.0 µs (of 28).
local function run_op(body)
  local seq, n = tonumber(ARGV[1]), tonumber(ARGV[2])
  local tok = KEYS[1]
  local last = seq == n - 1
  if n > 1 and seq > 0 then
    local cur
    if last then
      cur = tonumber(redis.call('GET', tok) or '0')
    else
      cur = redis.call('INCR', tok) - 1
    end
    if cur ~= seq then
      if last or cur == 0 then
        -- The last op ends the round; a token INCR just created (expired, or op 0 never
        -- ran) has no expiry and must not stay.
        redis.call('DEL', tok)
      else
        redis.call('DECR', tok)
      end
      return { 'skip', tostring(cur) }
    end
  end
  local ok, res = pcall(body)
  local out, advance = nil, true
  if ok then
    out = res
  elseif type(res) == 'table' and res.meta_err then
    out = { 'err', res.meta_err, res.msg }
  elseif type(res) == 'table' and res.meta_retry then
    out, advance = { 'retry', res.msg }, false
  else
    -- A command failed (WRONGTYPE: a key of the wrong type) or a bug: pass the error on
    -- with its own code; the op does not count as run, so the rest of the round skips.
    if type(res) == 'table' and res.err then res = res.err end
    out, advance = redis.error_reply(tostring(res)), false
  end
  if n > 1 then
    if last then
      redis.call('DEL', tok)
    elseif seq == 0 then
      if advance then redis.call('SET', tok, '1', 'PX', 60000) end
    elseif not advance then
      redis.call('DECR', tok)
    end
  end
  return out
end

-- files.lua: an inode's end (counters, deletion), its chunks and slices, and sessions, open
-- files and locks. After quota.lua.

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
  if a.typ == T_LNK then redis.call('DEL', ksymlink) end
  -- (An inode whose record says it never had an xattr, HINT.NO_XATTRS, has no hash.)
  if a.hintbits % 32 < 16 then redis.call('DEL', kxattr) end
  if a.typ == T_REG and a.length ~= ZERO8 then
    redis.call('HSET', S.pf, ino8, a.length)
  end
  add_counter(S.used, -space(a))
  add_counter(S.total, -1)
end

-- Chunks: `VER .. slices` strings, 24 bytes per slice. Chunk 0 (most files' only chunk) is
-- found by its key; the indexes of the others are in the inode's chunk index ZSET ---------

local function index_chunk(kindex, indx)
  if indx ~= 0 then
    -- (A string: see lib.lua on numbers passed to redis.call.)
    local s = tostring(indx)
    redis.call('ZADD', kindex, s, s)
  end
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
  if size > 0 and (redis.call('GETRANGE', kchunk, '0', '0') ~= VER or (size - 1) % 24 ~= 0) then
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



-- Whether some session holds an inode open (its openers SET is not empty): then
-- { kopeners, kkept }, what remove_inode needs to keep it; else false. Its attributes `a`
-- (nil when missing) may say that it never was (HINT.NEVER_OPENED): then nothing is read.
-- A check-phase read: a wrong-type key fails here, before any write.
local function is_open(a, kopeners, kkept)
  if a and a.hintbits >= 32 then return false end -- HINT.NEVER_OPENED
  return redis.call('SCARD', kopeners) > 0 and { kopeners, kkept }
end

-- Who holds a sustained inode open: its sessions are in its kept openers set `kkept` and,
-- when a library from before that set sustained it, in its openers set `kopeners`. Returns
-- whether session `sid8` is in the kept set, and how many sessions other than `sid8` are in
-- either set. Check-phase reads: a wrong-type key fails here.
local function sustained_holders(kopeners, kkept, sid8)
  local kept = redis.call('SISMEMBER', kkept, sid8)
  local mine = kept + redis.call('SISMEMBER', kopeners, sid8)
  return kept == 1, redis.call('SCARD', kkept) + redis.call('SCARD', kopeners) - mine
end

-- Puts `member` back into the sets of `keys` (the first `n`) that forget_openers removed it
-- from (`removed`).
local function unforget_openers(keys, n, member, removed)
  for i = 1, n do
    if removed[i] == 1 then redis.call('SADD', keys[i], member) end
  end
end

-- Removes `member` from each openers set of `keys` (the first `n`), the first writes of an op
-- that read none of those sets before: each SREM is its own type check. A key of the wrong
-- type (a damaged volume) fails the op there, once the SREMs before it are undone, so that
-- nothing of the op stays written. Returns, per key, 1 when `member` was there, else 0.
local function forget_openers(keys, n, member)
  local removed = {}
  for j = 1, n do
    local r = redis.pcall('SREM', keys[j], member)
    if type(r) == 'table' and r.err then
      unforget_openers(keys, j - 1, member, removed)
      error(r)
    end
    removed[j] = r
  end
  return removed
end

-- logic::remove_inode, sustained case: the last link went while the inode is open; it stays
-- with nlink 0 and ctime `time`, and its openers set (`kept`: its key, then the kept
-- openers key) is renamed to the kept openers set, so that a release finds the sessions of a
-- live inode in the one set and those of a sustained inode in the other (see release.lua).
-- Returns the encoded attributes.
local function sustain_inode(kattr, a, time, kept)
  redis.call('RENAME', kept[1], kept[2])
  a.nlink = 0
  a.ctime = time
  return put_attr(kattr, a)
end

-- logic::namespace::remove_inode: the last link of inode `ino8` (attributes `a`) is gone; it
-- is charged to no directory from now on (a directory's quota goes), and is kept (`sustain`:
-- some session holds it open; then { openers key, kept openers key }) or deleted. Write
-- phase: the op ran stat_check_attr, restat_check (`restated`: which made the statistics
-- change itself), has_quotas for a directory, and check_deletion unless sustained. Returns
-- the sustained inode's encoded attributes, or false when deleted.
local function remove_inode(kattr, ksymlink, kxattr, ino8, a, sustain, time, restated)
  if not restated then restat(ino8, a, nil) end
  if a.typ == T_DIR and has_quotas() then quota_drop(ino8) end
  if sustain then return sustain_inode(kattr, a, time, sustain) end
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

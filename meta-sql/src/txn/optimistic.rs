//! The optimistic side of directory quotas (the design and why it is safe are in the `quota`
//! module docs): the backend's [`QuotaCache`], quota chains answered from it, the growth an
//! attempt's ops checked ([`Peak`]), the attempt's conditional quota updates and generation
//! guard, and the detection of directory moves between two sets of quotas.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Mutex, MutexGuard};

use meta_core::{Attr, DirStat, Error, ErrorKind, Ino, Op, OpOutput, Quota, Result};

use super::{Group, NodeW, SqlTxn};
use crate::exec::{Arg, Stmt, Ty};
use crate::sql::{
    Dialect, LockMode, QUOTA_COUNT, QUOTA_GEN, Sql, columns, int_at, padded_lists, sat_add_arg,
};

/// Directories a [`QuotaCache`] holds at most (past that it starts again empty).
const MAX_CACHED_DIRS: usize = 65_536;
/// Levels a walk through the cache follows at most before the chain is read instead.
const MAX_CACHED_WALK: usize = 4096;

// ------------------------------------------------------------------------------------------
// Statements

impl Sql {
    /// `mode`'s row lock on a quota counter row; a share lock is PostgreSQL's `FOR KEY
    /// SHARE`, which conflicts with `FOR UPDATE` only (see the `quota` module docs).
    fn counter_lock(&self, mode: LockMode) -> &'static str {
        match (mode, self.d) {
            (LockMode::Share, Dialect::Postgres) => " FOR KEY SHARE",
            _ => self.lock_mode(mode),
        }
    }

    /// The quota count and generation rows `(name, value)`, with `mode`'s row lock on both.
    pub(crate) fn quota_counters(&self, mode: LockMode) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT name, value FROM {} WHERE name IN (",
            self.t("counter")
        ));
        b.p(Arg::Text(QUOTA_COUNT.into()))
            .s(", ")
            .p(Arg::Text(QUOTA_GEN.into()));
        b.s(") ORDER BY name");
        b.s(self.counter_lock(mode));
        b.done()
    }

    /// An optimistic batch's generation guard: one row while the quota set's generation is
    /// still `generation`, share-locked until the batch commits.
    pub(crate) fn quota_gen_guard(&self, generation: i64) -> Stmt {
        let mut b = self.b();
        // The value (BIGINT everywhere) rather than a literal, which PostgreSQL types INT4.
        b.s(&format!(
            "SELECT value FROM {} WHERE name = ",
            self.t("counter")
        ));
        b.p(Arg::Text(QUOTA_GEN.into())).s(" AND value = ");
        b.p(Arg::Int(generation));
        b.s(self.counter_lock(LockMode::Share));
        b.done()
    }

    /// The conditional commutative update of an optimistic batch's quotas. Each row `[ino,
    /// inodes, length, space, grew_inodes, peak_inodes, grew_space, peak_space]` (distinct
    /// inodes, increasing) adds the three deltas to the stored usage where the stored row
    /// passes what [`Quota::check`] checked: for each of space and inodes, nothing when no op
    /// grew it (`grew_* = 0`), the limit is 0 or above `i64::MAX` (negative here: `check`
    /// compares limits unsigned, so no usage reaches it), else `used + peak <= limit`. One
    /// row matches per quota that passes; a quota removed meanwhile, or whose limit would be
    /// passed, is a shortfall. Rows are locked in inode order (PostgreSQL: by a `FOR UPDATE`
    /// subquery when there are several).
    pub(crate) fn quota_deltas(&self, rows: Vec<[i64; 8]>) -> Vec<Stmt> {
        if rows.is_empty() {
            return Vec::new();
        }
        let quota = self.t("quota");
        if self.d == Dialect::Postgres {
            // One row needs no lock order (the common case: one quota on the path).
            let ordered = rows.len() > 1;
            let rows: Vec<Vec<Arg>> = rows
                .into_iter()
                .map(|r| r.iter().map(|&v| Arg::Int(v)).collect())
                .collect();
            let cols = columns(rows, &[Ty::Int; 8]);
            let inos = cols[0].clone();
            let mut b = self.b();
            let sat = |a: &str, d: &str| self.d.sat_add(a, d);
            b.s(&format!(
                "UPDATE {quota} AS q SET used_inodes = {}, used_length = {}, used_space = {} \
                 FROM UNNEST(",
                sat("q.used_inodes", "d.di"),
                sat("q.used_length", "d.dl"),
                sat("q.used_space", "d.ds")
            ));
            for (i, a) in cols.into_iter().enumerate() {
                if i > 0 {
                    b.s(", ");
                }
                b.arr(a, Ty::Int);
            }
            b.s(") AS d(ino, di, dl, ds, ci, pi, cs, ps)");
            if ordered {
                b.s(", ");
                self.pg_lock_in_order(&mut b, "quota", "ino", inos, Ty::Int);
                b.s(" WHERE l.ino = q.ino AND");
            } else {
                b.s(" WHERE");
            }
            b.s(&format!(
                " q.ino = d.ino \
                 AND (d.cs = 0 OR q.max_space <= 0 OR {} <= q.max_space) \
                 AND (d.ci = 0 OR q.max_inodes <= 0 OR {} <= q.max_inodes)",
                sat("q.used_space", "d.ps"),
                sat("q.used_inodes", "d.pi")
            ));
            return vec![b.done()];
        }
        let keys = rows
            .into_iter()
            .map(|r| r.iter().map(|&v| Arg::Int(v)).collect())
            .collect();
        padded_lists(keys, 64)
            .into_iter()
            .map(|list: Vec<Vec<Arg>>| {
                let v = |k: &Vec<Arg>, i: usize| k.get(i).cloned().unwrap_or(Arg::Int(0));
                let mut b = self.b();
                b.s(&format!("UPDATE {quota} SET "));
                for (n, (col, i)) in [("used_inodes", 1), ("used_length", 2), ("used_space", 3)]
                    .into_iter()
                    .enumerate()
                {
                    if n > 0 {
                        b.s(", ");
                    }
                    b.s(&format!("{col} = CASE ino"));
                    for k in &list {
                        b.s(" WHEN ").p(v(k, 0)).s(" THEN ");
                        sat_add_arg(&mut b, col, int_at(k, i));
                    }
                    b.s(" END");
                }
                b.s(" WHERE ino IN (");
                for (i, k) in list.iter().enumerate() {
                    if i > 0 {
                        b.s(", ");
                    }
                    b.p(v(k, 0));
                }
                b.s(") AND CASE ino");
                for k in &list {
                    b.s(" WHEN ").p(v(k, 0)).s(" THEN ((").p(v(k, 6));
                    b.s(" = 0 OR max_space <= 0 OR ");
                    sat_add_arg(&mut b, "used_space", int_at(k, 7));
                    b.s(" <= max_space) AND (").p(v(k, 4));
                    b.s(" = 0 OR max_inodes <= 0 OR ");
                    sat_add_arg(&mut b, "used_inodes", int_at(k, 5));
                    b.s(" <= max_inodes))");
                }
                b.s(" END");
                b.done()
            })
            .collect()
    }
}

// ------------------------------------------------------------------------------------------
// The backend's cache

/// The quota count and the quota set's generation, as read together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counters {
    /// The generation (counter `quotaGen`).
    pub generation: i64,
    /// The number of quotas (counter `quotaCount`).
    pub count: i64,
}

/// A directory as a batch saw it under some generation: its node row (the parent is what
/// matters) and its quota row (limits, and a usage that may have moved on since).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CachedDir {
    attr: Attr,
    quota: Option<Quota>,
}

#[derive(Default)]
struct CacheState {
    counters: Option<Counters>,
    dirs: HashMap<Ino, CachedDir>,
}

/// What one backend remembers of its volume's quotas between batches: the quota count and
/// generation last read, and the directories its batches walked (from a charged directory to
/// the root) under that generation. It holds while the generation does not change, and an
/// attempt that used it proves that in its writes (the `quota` module docs).
#[derive(Default)]
pub(crate) struct QuotaCache {
    state: Mutex<CacheState>,
}

impl QuotaCache {
    fn lock(&self) -> MutexGuard<'_, CacheState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The counters last read, if any.
    pub(crate) fn counters(&self) -> Option<Counters> {
        self.lock().counters
    }

    /// Forgets everything, then remembers `counters` (a freshly formatted volume).
    pub(crate) fn reset(&self, counters: Option<Counters>) {
        let mut s = self.lock();
        *s = CacheState::default();
        s.counters = counters;
    }

    /// Directory `ino` as remembered under generation `generation`.
    fn dir(&self, generation: i64, ino: Ino) -> Option<CachedDir> {
        let s = self.lock();
        match s.counters {
            Some(c) if c.generation == generation => s.dirs.get(&ino).copied(),
            _ => None,
        }
    }

    /// Whether directory `ino` is remembered under generation `generation`.
    fn has(&self, generation: i64, ino: Ino) -> bool {
        self.dir(generation, ino).is_some()
    }

    /// Takes in what a committed attempt learned.
    pub(crate) fn learn(&self, l: Learned) {
        let Some(c) = l.counters else {
            return;
        };
        let mut s = self.lock();
        if l.forget {
            *s = CacheState::default();
            return;
        }
        if s.counters.map(|x| x.generation) != Some(c.generation)
            || s.dirs.len() + l.dirs.len() > MAX_CACHED_DIRS
        {
            s.dirs.clear();
        }
        s.counters = Some(c);
        s.dirs.extend(l.dirs);
    }
}

/// What a committed attempt leaves for the [`QuotaCache`]: the counters it read (or used),
/// the directories whose quota rows it read with their node rows (usage as it left them),
/// or, when it changed the quota set, that the cache is to be forgotten.
#[derive(Default)]
pub(crate) struct Learned {
    counters: Option<Counters>,
    forget: bool,
    dirs: Vec<(Ino, CachedDir)>,
}

// ------------------------------------------------------------------------------------------
// Per attempt

/// The growth of one quota that a batch's ops checked with [`Quota::check`], for its
/// conditional update to check again against the stored usage: per field, the largest
/// cumulative change (usage written minus usage the batch started from) at a write whose own
/// change grew that field; `None` when no write grew it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Peak {
    inodes: Option<i64>,
    space: Option<i64>,
}

impl Peak {
    fn max(self, o: Peak) -> Peak {
        let m = |a: Option<i64>, b: Option<i64>| match (a, b) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, None) | (None, x) => x,
        };
        Peak {
            inodes: m(self.inodes, o.inodes),
            space: m(self.space, o.space),
        }
    }
}

/// Folds an op's peaks into the batch's.
pub(super) fn fold_peaks(batch: &mut BTreeMap<Ino, Peak>, op: BTreeMap<Ino, Peak>) {
    for (d, p) in op {
        let e = batch.entry(d).or_default();
        *e = e.max(p);
    }
}

/// A batch's node writes and quota writes.
type Writes<'w> = (&'w BTreeMap<Ino, NodeW>, &'w BTreeMap<Ino, Option<Quota>>);

/// The optimistic state of one attempt.
#[derive(Default)]
pub(super) struct OptState<'a> {
    /// The backend's cache: set for an optimistic attempt.
    cache: Option<&'a QuotaCache>,
    /// The cache's counters when the attempt started.
    snapshot: Option<Counters>,
    /// Node rows copied from the cache (not read by this attempt).
    injected: HashSet<Ino>,
    /// The (locked) batch changes the quota set: the cache is forgotten after it.
    pub(super) changed: bool,
    /// Directories the batch creates (with no quota), for the cache.
    created: Vec<(Ino, Attr)>,
}

/// `Conflict` that sends an optimistic attempt to the locked path.
fn locked_path(why: String) -> Error {
    Error::new(
        ErrorKind::Conflict,
        format!("{why}: the batch runs again with its quota rows locked"),
    )
}

impl<'a> SqlTxn<'a> {
    /// True when `ops` may run optimistically: no quota is set or removed, no entry moves
    /// between directories (a rename's cycle check walks the ancestors, which must be read
    /// fresh, and a moved directory may change the quota set), and no inode is restored (a
    /// load writes attributes wholesale).
    pub(crate) fn optimistic_ok(ops: &[Op]) -> bool {
        !ops.iter().any(|o| match o {
            Op::SetQuota { .. } | Op::RemoveQuota { .. } | Op::Restore(_) => true,
            Op::Rename {
                parent, new_parent, ..
            } => parent != new_parent,
            _ => false,
        })
    }

    /// Makes this attempt optimistic, with the backend's `cache`.
    pub(crate) fn set_optimistic(&mut self, cache: &'a QuotaCache) {
        self.opt.snapshot = cache.counters();
        self.opt.cache = Some(cache);
    }

    /// True for an optimistic attempt.
    pub(super) fn optimistic(&self) -> bool {
        self.opt.cache.is_some()
    }

    /// The counters an optimistic attempt starts from, when the cache has them.
    pub(super) fn quota_snapshot(&self) -> Option<Counters> {
        self.opt.snapshot.filter(|_| self.optimistic())
    }

    /// Whether the chain of `dir` (not in the batch's cache) can be answered from the
    /// backend's cache.
    pub(super) fn cached(&self, dir: Ino) -> bool {
        match (self.opt.cache, self.base.quota_gen) {
            (Some(c), Some(generation)) => c.has(generation, dir),
            _ => false,
        }
    }

    /// The parent of `ino` in this batch's view (its writes, then what it read); `Err` when
    /// the batch removed it, `Ok(None)` when it knows nothing of it.
    fn view_parent(&self, ino: Ino) -> std::result::Result<Option<Ino>, ()> {
        for layer in [&self.op, &self.batch] {
            if let Some(abs) = layer.nodes.get(&ino).and_then(|w| w.abs) {
                return abs.map(|a| Some(a.parent)).ok_or(());
            }
        }
        match self.base.nodes.get(&ino) {
            Some(Ok(Some(a))) => Ok(Some(a.parent)),
            Some(_) => Err(()),
            None => Ok(None),
        }
    }

    /// Optimistic attempts: answers the quota chain of `dir` from the backend's cache when
    /// the whole walk from `dir` to the root is known — each step from this batch's view
    /// first (what it wrote, then what it read), else from the cache — and reaches the root
    /// without a loop. Copies the walk's cached quota rows and node rows into the batch's
    /// cache (the logic then walks the same path) and returns true; false when a step is
    /// unknown (the chain is then read).
    pub(super) fn serve_cached(&mut self, dir: Ino) -> bool {
        let (Some(cache), Some(generation)) = (self.opt.cache, self.base.quota_gen) else {
            return false;
        };
        let mut path: Vec<(Ino, Option<CachedDir>, bool)> = Vec::new();
        let mut seen = HashSet::new();
        let mut cur = dir;
        loop {
            if !seen.insert(cur) || seen.len() > MAX_CACHED_WALK {
                return false;
            }
            let cached = cache.dir(generation, cur);
            // A directory this batch created has no quota row.
            let created = matches!(self.base.nodes.get(&cur), Some(Ok(None)));
            if !self.base.quotas.contains_key(&cur) && cached.is_none() && !created {
                return false;
            }
            path.push((cur, cached, created));
            if cur == Ino::ROOT {
                break;
            }
            let parent = match self.view_parent(cur) {
                Ok(Some(p)) => p,
                Ok(None) => match cached {
                    Some(c) => c.attr.parent,
                    None => return false,
                },
                Err(()) => return false,
            };
            if parent == Ino::ZERO {
                return false;
            }
            cur = parent;
        }
        for (ino, cached, created) in path {
            if created {
                self.base.quotas.entry(ino).or_insert(Ok(None));
            }
            if let Some(c) = cached {
                self.base.quotas.entry(ino).or_insert(Ok(c.quota));
                if let std::collections::hash_map::Entry::Vacant(e) = self.base.nodes.entry(ino) {
                    e.insert(Ok(Some(c.attr)));
                    self.opt.injected.insert(ino);
                }
            }
        }
        true
    }

    /// Caches a node row read with a chain: over a row copied from the backend's cache
    /// (fresh data wins), not over one this attempt read.
    pub(super) fn cache_chain_node(&mut self, ino: Ino, attr: Result<Attr>) {
        if self.opt.injected.remove(&ino) {
            self.base.nodes.insert(ino, attr.map(Some));
        } else {
            self.base.nodes.entry(ino).or_insert_with(|| attr.map(Some));
        }
    }

    /// Optimistic attempts: checks a quota write the logic is about to buffer and notes the
    /// growth it checked. Only a change of usage of a quota that existed when read can be
    /// written as a conditional delta; a removal (`None` over a stored quota) or anything
    /// else sends the batch to the locked path (`Conflict`).
    pub(super) fn note_quota_write(&mut self, dir: Ino, quota: Option<&Quota>) -> Result<()> {
        let served = match self.base.quotas.get(&dir) {
            Some(Ok(q)) => *q,
            _ => {
                return Err(locked_path(format!(
                    "the quota of directory {dir} is unreadable"
                )));
            }
        };
        let (served, new) = match (served, quota) {
            (None, None) => return Ok(()),
            (Some(s), Some(n)) if s.max_space == n.max_space && s.max_inodes == n.max_inodes => {
                (s, n)
            }
            _ => {
                return Err(locked_path(format!(
                    "the batch creates, removes or changes the quota of directory {dir}"
                )));
            }
        };
        let mut prev = served;
        for layer in [&self.batch, &self.op] {
            if let Some(Some(q)) = layer.quotas.get(&dir) {
                prev = *q;
            }
        }
        let step = new.used - prev.used;
        let total = new.used - served.used;
        let peak = Peak {
            inodes: (step.inodes > 0).then_some(total.inodes),
            space: (step.space > 0).then_some(total.space),
        };
        let e = self.op.quota_peaks.entry(dir).or_default();
        *e = e.max(peak);
        Ok(())
    }

    /// After the logic of an optimistic attempt: an op that failed with `QuotaExceeded` may
    /// have been decided against an old usage, so the batch runs again on the locked path
    /// (`Conflict`), which alone may answer EDQUOT.
    pub(crate) fn quota_outcome(&self, out: &[Result<OpOutput>]) -> Result<()> {
        let exceeded = out
            .iter()
            .any(|r| matches!(r, Err(e) if e.kind() == ErrorKind::QuotaExceeded));
        if self.optimistic() && exceeded {
            return Err(locked_path(
                "an op passed a quota limit as this client remembered the usage".into(),
            ));
        }
        Ok(())
    }

    /// The conditional updates of an optimistic batch's quota writes (`writes`, with the
    /// growth its ops checked in `peaks`): one row per quota whose usage changed or whose
    /// growth was checked. Records the usage left for the cache.
    pub(super) fn optimistic_deltas(
        &mut self,
        writes: BTreeMap<Ino, Option<Quota>>,
        peaks: &BTreeMap<Ino, Peak>,
    ) -> Result<Group> {
        let mut rows: Vec<[i64; 8]> = Vec::new();
        for (dir, q) in writes {
            let served = match self.base.quotas.get(&dir) {
                Some(Ok(q)) => *q,
                _ => None,
            };
            match (served, q) {
                (None, None) => {}
                (Some(s), Some(n)) => {
                    let d: DirStat = n.used - s.used;
                    let p = peaks.get(&dir).copied().unwrap_or_default();
                    if d.is_zero() && p == Peak::default() {
                        continue;
                    }
                    let flag = |v: Option<i64>| (i64::from(v.is_some()), v.unwrap_or(0));
                    let (ci, pi) = flag(p.inodes);
                    let (cs, ps) = flag(p.space);
                    rows.push([dir.0 as i64, d.inodes, d.length, d.space, ci, pi, cs, ps]);
                    self.base.quotas.insert(dir, Ok(Some(n)));
                }
                _ => {
                    return Err(locked_path(format!(
                        "the batch changes the quota set at directory {dir}"
                    )));
                }
            }
        }
        let n = rows.len() as u64;
        Ok(Group::new(self.sql.quota_deltas(rows)).expect(
            n,
            "a directory quota was removed, or its limit reached, since this client read it",
        ))
    }

    /// An optimistic attempt's generation guard, when it answered from counters it did not
    /// lock (`has_quotas`).
    pub(super) fn gen_guard(&self) -> Option<Group> {
        let generation = self.base.quota_gen?;
        (self.optimistic() && self.quota_guard).then(|| {
            let mut g = Group::new(vec![self.sql.quota_gen_guard(generation)])
                .expect(1, "the volume's quota set changed while this batch ran");
            g.query = true;
            g
        })
    }

    /// What this attempt leaves for the backend's cache once committed.
    pub(crate) fn quota_learned(&self) -> Learned {
        let (Some(generation), Some(Ok(count))) = (self.base.quota_gen, &self.base.quota_count)
        else {
            return Learned::default();
        };
        let mut dirs = Vec::new();
        for (d, q) in &self.base.quotas {
            if let (Ok(q), Some(Ok(Some(attr)))) = (q, self.base.nodes.get(d)) {
                dirs.push((
                    *d,
                    CachedDir {
                        attr: *attr,
                        quota: *q,
                    },
                ));
            }
        }
        for (d, attr) in &self.opt.created {
            if !matches!(self.base.quotas.get(d), Some(Ok(Some(_)))) {
                let (attr, quota) = (*attr, None);
                dirs.push((*d, CachedDir { attr, quota }));
            }
        }
        Learned {
            counters: Some(Counters {
                generation,
                count: *count,
            }),
            forget: self.opt.changed,
            dirs,
        }
    }

    /// Notes the directories the batch creates (`nodes`: its node writes): a new directory
    /// has no quota, and its parent's chain is its own, so once the batch commits the cache
    /// can answer for it (the first batch charging it then reads nothing).
    pub(super) fn note_created_dirs(&mut self, nodes: &BTreeMap<Ino, NodeW>) {
        self.opt.created = nodes
            .iter()
            .filter_map(|(ino, w)| match (w.abs, self.base.nodes.get(ino)) {
                (Some(Some(a)), Some(Ok(None))) if a.typ == meta_core::FileType::Directory => {
                    Some((*ino, a))
                }
                _ => None,
            })
            .collect();
    }

    /// True when the batch moves a directory (`nodes`: its node writes; `quotas`: its quota
    /// writes) between two different sets of quotas above it, or when that cannot be told
    /// from what it read: the quota set's generation must then change.
    pub(super) fn moved_across_quotas(
        &self,
        nodes: &BTreeMap<Ino, NodeW>,
        quotas: &BTreeMap<Ino, Option<Quota>>,
    ) -> bool {
        for (ino, w) in nodes {
            let Some(Some(after)) = w.abs else {
                continue;
            };
            let Some(Ok(Some(before))) = self.base.nodes.get(ino) else {
                continue;
            };
            if after.typ != meta_core::FileType::Directory
                || before.parent == after.parent
                || before.parent == Ino::ZERO
                || after.parent == Ino::ZERO
            {
                continue;
            }
            let old = self.quota_dirs_above(before.parent, None);
            let new = self.quota_dirs_above(after.parent, Some((nodes, quotas)));
            match (old, new) {
                (Some(a), Some(b)) if a == b => {}
                _ => return true,
            }
        }
        false
    }

    /// The directories with a quota from `dir` up to the root, as read (`after` `None`) or
    /// as the batch leaves them (`after`: its node and quota writes); `None` when a step was
    /// not read.
    fn quota_dirs_above(&self, dir: Ino, after: Option<Writes<'_>>) -> Option<Vec<Ino>> {
        let mut out = Vec::new();
        let mut cur = dir;
        for _ in 0..MAX_CACHED_WALK {
            let has = match after.and_then(|(_, qs)| qs.get(&cur)) {
                Some(q) => q.is_some(),
                None => match self.base.quotas.get(&cur) {
                    Some(Ok(q)) => q.is_some(),
                    _ => return None,
                },
            };
            if has {
                out.push(cur);
            }
            if cur == Ino::ROOT {
                return Some(out);
            }
            let attr = match after.and_then(|(ns, _)| ns.get(&cur)).and_then(|w| w.abs) {
                Some(a) => a?,
                None => match self.base.nodes.get(&cur) {
                    Some(Ok(Some(a))) => *a,
                    _ => return None,
                },
            };
            if attr.parent == Ino::ZERO {
                return None;
            }
            cur = attr.parent;
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use meta_core::Backend;

    use super::*;

    /// The conditional quota update passes exactly when the locked path's `Quota::check` of
    /// an op whose growth brings the stored usage to `used + peak` passes — limits of 0, at
    /// the edge, at `i64::MAX` and above it (stored negative), peaks up to and past the
    /// limit or below zero, and a field no op grew (not checked, even over a lowered
    /// limit) — on every dialect at hand.
    #[tokio::test]
    async fn conditional_update_mirrors_quota_check() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let cols: Vec<(&str, Ty)> = crate::codec::QUOTA_COLS
            .iter()
            .map(|c| (*c, Ty::Int))
            .collect();
        for url in crate::sql::test_urls(tmp.path(), "qd") {
            let b = crate::open(meta_core::parse_url(&url)?.0)?;
            b.format(&meta_core::Setting::new("deltas"), false).await?;
            let mut n = 0;
            for max in [0u64, 100, 101, i64::MAX as u64, 1 << 63, u64::MAX] {
                for used in [0i64, 60, 100, 150] {
                    for (grew, peak) in [(0, 5), (1, -3), (1, 0), (1, 1), (1, 40), (1, 41)] {
                        for space in [false, true] {
                            n += 1;
                            let dir = Ino(1000 + n);
                            let stat = |v: i64| DirStat {
                                inodes: v,
                                length: 0,
                                space: v,
                            };
                            let q = Quota {
                                max_space: if space { max } else { 0 },
                                max_inodes: if space { 0 } else { max },
                                used: stat(used),
                            };
                            let row = vec![crate::codec::quota_args(dir, &q)];
                            for st in b.sql.insert("quota", &cols, 1, row, false) {
                                b.run_stmt(st).await?;
                            }
                            // What the locked path checks: the op's own growth (1) on top
                            // of the usage before it, reaching `used + peak`.
                            let before = Quota {
                                used: stat(used + peak - 1),
                                ..q
                            };
                            let one = DirStat {
                                inodes: i64::from(!space),
                                length: 0,
                                space: i64::from(space),
                            };
                            let want = grew == 0 || before.check(dir, &one).is_ok();
                            let row = if space {
                                [dir.0 as i64, 0, 0, 1, 0, 0, grew, peak]
                            } else {
                                [dir.0 as i64, 1, 0, 0, grew, peak, 0, 0]
                            };
                            let mut got = 0;
                            for st in b.sql.quota_deltas(vec![row]) {
                                got += b.run_stmt(st).await?;
                            }
                            anyhow::ensure!(
                                got == u64::from(want),
                                "{}: limit {max}, used {used}, grew {grew}, peak {peak}, \
                                 space {space}: the update matched {got}, check says {want}",
                                b.sql.d.scheme()
                            );
                        }
                    }
                }
            }
            if b.sql.d != Dialect::Sqlite {
                b.drop_tables().await?;
            }
            b.close().await;
        }
        Ok(())
    }
}

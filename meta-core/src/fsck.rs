//! fsck: checks a whole volume through the [`Backend`] read API.
//!
//! Rules checked: every entry points to an existing inode of the stated type; every inode is
//! reachable from the root; a directory's nlink is 2 + its subdirectories and its `parent` is
//! the directory holding it; a non-directory's nlink equals the number of entries naming it
//! and its `parent` is the one directory naming it (or 0, and 0 when several do); a symlink
//! has a target; `usedSpace` and `totalInodes` equal the recomputed sums; the ID counters are
//! above every inode and slice ID in use or pending deletion; no pending deletion names a
//! live inode or a slice a live inode reads (the data layer would delete live data). An
//! inode with nlink 0 that some session holds open is sustained (unlinked while open): not an
//! orphan, counted apart; one that no session holds is reported. On a volume that keeps directory statistics
//! ([`crate::Setting::dir_stats`]), every directory's stored statistics equal those
//! recomputed from the inodes ([`crate::stats::expected_dir_stats`]), and every directory
//! quota's usage equals the sum of those over its subtree ([`crate::quota`]); a quota on an
//! inode that is not a live directory is reported.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;

use crate::backend::Backend;
use crate::error::Result;
use crate::types::{Attr, Counter, FileType, Ino, Pending, show_name};

/// Entries fetched per readdir call while walking.
const PAGE: usize = 1000;
/// Directories whose statistics are read per request.
const STATS_PAGE: usize = 1024;

/// What fsck found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FsckReport {
    /// Live inodes scanned.
    pub inodes: u64,
    /// Directory entries walked.
    pub entries: u64,
    /// Sessions of the volume.
    pub sessions: u64,
    /// Sustained inodes: no link left, held open by a session.
    pub sustained: u64,
    /// Inconsistencies, one sentence each.
    pub problems: Vec<String>,
}

impl FsckReport {
    /// True when no problem was found.
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks the volume held by `backend`. Returns the report; `Err` only when reading fails.
pub async fn fsck(backend: &dyn Backend) -> Result<FsckReport> {
    let mut rep = FsckReport::default();
    let attrs: BTreeMap<Ino, Attr> = crate::backend::all_inodes(backend, PAGE).await?;
    rep.inodes = attrs.len() as u64;
    let Some(root) = attrs.get(&Ino::ROOT) else {
        rep.problems.push("root inode 1 is missing".into());
        return Ok(rep);
    };
    if root.typ != FileType::Directory {
        rep.problems.push("root inode 1 is not a directory".into());
        return Ok(rep);
    }

    // Inodes held open by some session (a session that vanished meanwhile holds nothing).
    let mut held: BTreeSet<Ino> = BTreeSet::new();
    let sessions = backend.list_sessions().await?;
    rep.sessions = sessions.len() as u64;
    for s in sessions {
        match backend.session_holdings(s.info.sid).await {
            Ok(h) => held.extend(h.open),
            Err(e) if e.kind() == crate::error::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }

    // Walk the tree from the root.
    let mut links: HashMap<Ino, u32> = HashMap::new();
    let mut subdirs: HashMap<Ino, u32> = HashMap::new();
    let mut seen_dir: HashMap<Ino, Ino> = HashMap::new();
    // Non-directories: the first directory naming each, and whether another one does too.
    let mut named_in: HashMap<Ino, (Ino, bool)> = HashMap::new();
    let mut stack = vec![Ino::ROOT];
    seen_dir.insert(Ino::ROOT, Ino::ROOT);
    while let Some(dir) = stack.pop() {
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let page = backend
                .read_dir(dir, cursor.as_deref(), PAGE, false)
                .await?;
            let n = page.len();
            for e in page {
                rep.entries += 1;
                let path = format!("{dir}/{}", show_name(&e.name));
                match attrs.get(&e.ino) {
                    None => rep
                        .problems
                        .push(format!("entry {path} points to missing inode {}", e.ino)),
                    Some(a) if a.typ != e.typ => rep.problems.push(format!(
                        "entry {path} says {} but inode {} is a {}",
                        e.typ.name(),
                        e.ino,
                        a.typ.name()
                    )),
                    Some(a) => {
                        *links.entry(e.ino).or_default() += 1;
                        if a.typ != FileType::Directory {
                            named_in
                                .entry(e.ino)
                                .and_modify(|(first, several)| *several |= *first != dir)
                                .or_insert((dir, false));
                        }
                        if a.typ == FileType::Directory {
                            *subdirs.entry(dir).or_default() += 1;
                            if let Some(first) = seen_dir.insert(e.ino, dir) {
                                rep.problems.push(format!(
                                    "directory {} is named in both {first} and {dir}",
                                    e.ino
                                ));
                            } else {
                                stack.push(e.ino);
                            }
                            if a.parent != dir {
                                rep.problems.push(format!(
                                    "directory {} lies in {dir} but its parent field says {}",
                                    e.ino, a.parent
                                ));
                            }
                        }
                    }
                }
                cursor = Some(e.name);
            }
            if n < PAGE {
                break;
            }
        }
    }

    let mut space: i64 = 0;
    let mut max_slice: u64 = 0;
    // The slices live inodes (sustained ones too) read: none of them may be pending deletion.
    let mut live_slices: HashMap<u64, Ino> = HashMap::new();
    for (&ino, a) in &attrs {
        // (Saturating, as the usedSpace counter itself stops at i64::MAX.)
        space = space.saturating_add(a.space() as i64);
        if a.nlink == 0 && !links.contains_key(&ino) {
            if held.contains(&ino) {
                rep.sustained += 1;
            } else {
                rep.problems.push(format!(
                    "inode {ino} ({}) has no link and no session holds it open",
                    a.typ.name()
                ));
            }
            if a.typ == FileType::Regular {
                for (_, slices) in backend.list_chunks(ino).await? {
                    note_slices(&slices, ino, &mut max_slice, &mut live_slices);
                }
            }
            continue;
        }
        if ino != Ino::ROOT && !links.contains_key(&ino) {
            rep.problems.push(format!(
                "inode {ino} ({}) is not reachable from the root",
                a.typ.name()
            ));
            continue;
        }
        match a.typ {
            FileType::Directory => {
                let want = 2 + subdirs.get(&ino).copied().unwrap_or(0);
                if a.nlink != want {
                    rep.problems.push(format!(
                        "directory {ino} has nlink {} but 2 + {} subdirectories = {want}",
                        a.nlink,
                        want - 2
                    ));
                }
            }
            _ => {
                let want = links.get(&ino).copied().unwrap_or(0);
                if a.nlink != want {
                    rep.problems.push(format!(
                        "inode {ino} has nlink {} but {want} entries name it",
                        a.nlink
                    ));
                }
                // The directory its statistics are charged to: the one naming it, or none
                // (0) once it is named in several (Attr::parent).
                match named_in.get(&ino) {
                    Some(&(dir, false)) if a.parent != dir && a.parent != Ino::ZERO => {
                        rep.problems.push(format!(
                            "inode {ino} lies in {dir} but its parent field says {}",
                            a.parent
                        ))
                    }
                    Some(&(_, true)) if a.parent != Ino::ZERO => rep.problems.push(format!(
                        "inode {ino} is named in several directories but its parent field \
                         says {} (0 expected)",
                        a.parent
                    )),
                    _ => {}
                }
            }
        }
        if a.typ == FileType::Symlink
            && let Err(e) = backend.read_link(ino).await
        {
            rep.problems
                .push(format!("symlink {ino} has no readable target: {e}"));
        }
        if a.typ == FileType::Regular {
            for (_, slices) in backend.list_chunks(ino).await? {
                note_slices(&slices, ino, &mut max_slice, &mut live_slices);
            }
        }
    }
    // Pending deletions: the data layer deletes what they name, so none may name what a live
    // inode reads, and the ID counters must stay above their IDs too (a new inode or slice
    // given one of them would lose its data to that deletion).
    let mut max_ino = attrs.keys().next_back().map(|i| i.0).unwrap_or(1);
    for p in backend.list_pending(usize::MAX).await? {
        match p {
            Pending::Slice { id, .. } => {
                max_slice = max_slice.max(id);
                if let Some(ino) = live_slices.get(&id) {
                    rep.problems.push(format!(
                        "slice {id} is pending deletion but live inode {ino} reads it"
                    ));
                }
            }
            Pending::File { ino, .. } => {
                max_ino = max_ino.max(ino.0);
                let live = attrs.contains_key(&ino);
                if live {
                    rep.problems.push(format!(
                        "inode {ino} is pending deletion but is live (its data would be deleted)"
                    ));
                }
                for (_, slices) in backend.list_chunks(ino).await? {
                    for s in slices.iter().filter(|s| s.id != 0) {
                        max_slice = max_slice.max(s.id);
                        if live {
                            continue; // (Its own slices: reported above.)
                        }
                        if let Some(live) = live_slices.get(&s.id) {
                            rep.problems.push(format!(
                                "slice {} of inode {ino}, pending deletion, is read by live \
                                 inode {live}",
                                s.id
                            ));
                        }
                    }
                }
            }
        }
    }

    let counter = |c| async move { backend.get_counter(c).await };
    let used = counter(Counter::UsedSpace).await?;
    if used != space {
        rep.problems.push(format!(
            "usedSpace counter is {used} but the inodes use {space} bytes"
        ));
    }
    let total = counter(Counter::TotalInodes).await?;
    if total != attrs.len() as i64 {
        rep.problems.push(format!(
            "totalInodes counter is {total} but {} inodes exist",
            attrs.len()
        ));
    }
    let next_ino = counter(Counter::NextInode).await?;
    if next_ino <= max_ino as i64 {
        rep.problems.push(format!(
            "nextInode counter {next_ino} is not above the largest inode {max_ino} (live or \
             pending deletion)"
        ));
    }
    let next_chunk = counter(Counter::NextChunk).await?;
    if max_slice > 0 && next_chunk <= max_slice as i64 {
        rep.problems.push(format!(
            "nextChunk counter {next_chunk} is not above the largest slice ID {max_slice}"
        ));
    }
    if backend.load().await?.dir_stats {
        check_dir_stats(backend, &attrs, &mut rep).await?;
        check_quotas(backend, &attrs, &mut rep).await?;
    }
    Ok(rep)
}

/// Raises `max` to the largest of `slices`' IDs and records them as read by live inode `ino`
/// (not ID 0: a hole, no object).
fn note_slices(
    slices: &[crate::types::Slice],
    ino: Ino,
    max: &mut u64,
    live: &mut HashMap<u64, Ino>,
) {
    for s in slices.iter().filter(|s| s.id != 0) {
        *max = (*max).max(s.id);
        live.entry(s.id).or_insert(ino);
    }
}

/// Compares every quota's stored usage with the sum of its subtree's expected statistics.
/// A backend without quotas (`Unsupported`) has none to check.
async fn check_quotas(
    backend: &dyn Backend,
    attrs: &BTreeMap<Ino, Attr>,
    rep: &mut FsckReport,
) -> Result<()> {
    let quotas = match backend.quotas().await {
        Ok(q) => q,
        Err(e) if e.kind() == crate::ErrorKind::Unsupported => return Ok(()),
        Err(e) => return Err(e),
    };
    if quotas.is_empty() {
        return Ok(());
    }
    let mut want: HashMap<Ino, crate::stats::DirStat> = HashMap::new();
    for (q, _) in &quotas {
        want.insert(*q, crate::stats::DirStat::default());
    }
    for (dir, stat) in crate::stats::expected_dir_stats(attrs) {
        // Every quota on the way from `dir` to the root gets its statistics.
        let mut cur = dir;
        for _ in 0..attrs.len() + 1 {
            if let Some(w) = want.get_mut(&cur) {
                *w = *w + stat;
            }
            match attrs.get(&cur) {
                Some(a) if cur != Ino::ROOT && a.parent != Ino::ZERO => cur = a.parent,
                _ => break,
            }
        }
    }
    for (dir, q) in quotas {
        match attrs.get(&dir) {
            Some(a) if a.typ == FileType::Directory && a.nlink > 0 => {}
            _ => {
                rep.problems.push(format!(
                    "a quota is set on {dir}, which is not a live directory"
                ));
                continue;
            }
        }
        let expected = want.get(&dir).copied().unwrap_or_default();
        if q.used != expected {
            rep.problems.push(format!(
                "quota of directory {dir} says {} inodes, {} bytes long, {} bytes of space used \
                 but its subtree adds up to {}, {}, {}",
                q.used.inodes,
                q.used.length,
                q.used.space,
                expected.inodes,
                expected.length,
                expected.space
            ));
        }
    }
    Ok(())
}

/// Compares every directory's stored statistics with those computed from `attrs`.
async fn check_dir_stats(
    backend: &dyn Backend,
    attrs: &BTreeMap<Ino, Attr>,
    rep: &mut FsckReport,
) -> Result<()> {
    let want = crate::stats::expected_dir_stats(attrs);
    let dirs: Vec<Ino> = attrs
        .iter()
        .filter(|(_, a)| a.typ == FileType::Directory)
        .map(|(i, _)| *i)
        .collect();
    for page in dirs.chunks(STATS_PAGE) {
        let got = backend.dir_stats(page).await?;
        for (dir, stored) in page.iter().zip(got) {
            let expected = want.get(dir).copied().unwrap_or_default();
            if stored != expected {
                rep.problems.push(format!(
                    "directory {dir} statistics say {} inodes, {} bytes long, {} bytes of space \
                     but its children add up to {}, {}, {}",
                    stored.inodes,
                    stored.length,
                    stored.space,
                    expected.inodes,
                    expected.length,
                    expected.space
                ));
            }
        }
    }
    Ok(())
}

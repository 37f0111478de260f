-- meta-sql schema v3 (SQLite): directory statistics (meta_core::stats). {prefix} is the
-- table_prefix. One row per directory that has had something charged to it: the number of
-- inodes charged to it, the sum of their lengths and of their 4 KiB-aligned space, in bytes.
-- Kept by adding deltas (INSERT ... ON CONFLICT DO UPDATE SET inodes = inodes + ...); a
-- directory without a row counts as zeros. Volumes formatted before v3 get the table empty:
-- their format record has dir_stats off, so nothing is charged to it.

CREATE TABLE IF NOT EXISTS {prefix}dirstat (
    ino    INTEGER NOT NULL PRIMARY KEY,
    inodes INTEGER NOT NULL,
    length INTEGER NOT NULL,
    space  INTEGER NOT NULL
);

-- meta-sql schema v4 (SQLite): directory quotas (meta_core::quota). {prefix} is the
-- table_prefix. One row per directory with a quota: its limits (u64 stored as their i64 bit
-- pattern; 0 is no limit) and its subtree's usage, the sum of the statistics of the
-- directories below it (inodes, length, space). The counter row `quotaCount` holds the
-- number of quotas (what a batch reads to know whether there are any); a volume formatted
-- before v4 gets it at 0 (it has no quotas).

CREATE TABLE IF NOT EXISTS {prefix}quota (
    ino         INTEGER NOT NULL PRIMARY KEY,
    max_space   INTEGER NOT NULL,
    max_inodes  INTEGER NOT NULL,
    used_inodes INTEGER NOT NULL,
    used_length INTEGER NOT NULL,
    used_space  INTEGER NOT NULL
);

INSERT OR IGNORE INTO {prefix}counter (name, value)
    SELECT 'quotaCount', 0 FROM {prefix}setting WHERE name = 'format';

-- meta-sql schema v4 (MySQL / MariaDB, InnoDB): directory quotas (meta_core::quota).
-- {prefix} is the table_prefix. One row per directory with a quota: its limits (u64 stored
-- as their i64 bit pattern; 0 is no limit) and its subtree's usage, the sum of the
-- statistics of the directories below it (inodes, length, space). The counter row
-- `quotaCount` holds the number of quotas, and its row lock orders quota creation against
-- the batches that charge directory statistics (see src/txn/quota.rs); a volume formatted
-- before v4 gets it at 0.

CREATE TABLE IF NOT EXISTS {prefix}quota (
    ino         BIGINT NOT NULL PRIMARY KEY,
    max_space   BIGINT NOT NULL,
    max_inodes  BIGINT NOT NULL,
    used_inodes BIGINT NOT NULL,
    used_length BIGINT NOT NULL,
    used_space  BIGINT NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

INSERT IGNORE INTO {prefix}counter (name, value)
    SELECT 'quotaCount', 0 FROM {prefix}setting WHERE name = 'format';

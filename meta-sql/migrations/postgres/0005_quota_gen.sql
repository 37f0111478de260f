-- meta-sql schema v5 (PostgreSQL): the generation of the volume's quota set. {prefix} is the
-- table_prefix. The counter row `quotaGen` grows by one in every batch that creates or
-- removes a directory quota or moves a directory between two sets of quotas; a batch that
-- charged quotas from what it remembered of them checks it in its write statement, and a
-- batch that creates a quota locks it first (see src/txn/quota.rs). A volume formatted before
-- v5 gets it at 0 (formatting starts it at the time in nanoseconds, so a volume formatted
-- again never repeats a generation).

INSERT INTO {prefix}counter (name, value)
    SELECT 'quotaGen', 0 FROM {prefix}setting WHERE name = 'format'
    ON CONFLICT (name) DO NOTHING;

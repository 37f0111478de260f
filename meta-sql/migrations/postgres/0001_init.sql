-- meta-sql schema v1 (PostgreSQL). {prefix} is the volume's table_prefix.
-- Integers are BIGINT; file types are codes 1 regular, 2 directory, 3 symlink, 4 fifo,
-- 5 char device, 6 block device, 7 socket; times are seconds + nanoseconds since the epoch.

CREATE TABLE IF NOT EXISTS {prefix}setting (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS {prefix}counter (
    name  VARCHAR(64) NOT NULL PRIMARY KEY,
    value BIGINT
);

CREATE TABLE IF NOT EXISTS {prefix}node (
    ino        BIGINT NOT NULL PRIMARY KEY,
    type       BIGINT NOT NULL,
    mode       BIGINT NOT NULL,
    uid        BIGINT NOT NULL,
    gid        BIGINT NOT NULL,
    rdev       BIGINT NOT NULL,
    atime_sec  BIGINT NOT NULL,
    atime_nsec BIGINT NOT NULL,
    mtime_sec  BIGINT NOT NULL,
    mtime_nsec BIGINT NOT NULL,
    ctime_sec  BIGINT NOT NULL,
    ctime_nsec BIGINT NOT NULL,
    nlink      BIGINT NOT NULL,
    length     BIGINT NOT NULL,
    parent     BIGINT NOT NULL,
    flags      BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS {prefix}edge (
    parent BIGINT NOT NULL,
    name   BYTEA NOT NULL,
    ino    BIGINT NOT NULL,
    type   BIGINT NOT NULL,
    PRIMARY KEY (parent, name)
);

CREATE TABLE IF NOT EXISTS {prefix}chunk (
    ino    BIGINT NOT NULL,
    indx   BIGINT NOT NULL,
    slices BYTEA NOT NULL,
    PRIMARY KEY (ino, indx)
);

CREATE TABLE IF NOT EXISTS {prefix}symlink (
    ino    BIGINT NOT NULL PRIMARY KEY,
    target BYTEA
);

CREATE TABLE IF NOT EXISTS {prefix}xattr (
    ino   BIGINT NOT NULL,
    name  BYTEA NOT NULL,
    value BYTEA,
    PRIMARY KEY (ino, name)
);

CREATE TABLE IF NOT EXISTS {prefix}delfile (
    ino    BIGINT NOT NULL PRIMARY KEY,
    length BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS {prefix}delslice (
    id   BIGINT NOT NULL PRIMARY KEY,
    size BIGINT NOT NULL
);

#!/usr/bin/env python3
"""Permission oracle: Linux's own answers for a matrix of permission cases.

Run as root:  python3 meta-conformance/oracle/permissions.py [--ext4-xattr]

For every case the parent (root) builds a fresh setup in its own directory
under a tmpfs temp dir (created in /dev/shm), then forks a child that drops
to the caller's credentials (setgroups, setresgid, setresuid) and performs
exactly one syscall.  The child reports `ok` or the errno name.  Where a case
asks for it, the parent then reports the target's mode (4 octal digits,
including setuid/setgid/sticky); otherwise `-`.

Output: one line per case, `case_id<TAB>result<TAB>mode_after_or_->`,
preceded by `#` comment lines (kernel, sysctls, notes).

Hard-link cases run twice: the plain ids with fs.protected_hardlinks=0, the
`_ph1` ids with fs.protected_hardlinks=1.  The original sysctl value is
always restored.  The xattr cases are repeated on an ext4 directory (ids
suffixed `_ext4`) if tmpfs answers EOPNOTSUPP to any of them, or always with
--ext4-xattr.

Stdlib only.
"""

import ctypes
import errno
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile

PROTECTED_HARDLINKS = "/proc/sys/fs/protected_hardlinks"
PROTECTED_REGULAR = "/proc/sys/fs/protected_regular"

# name -> (uid, gid, supplementary groups)
USERS = {
    "owner": (1000, 1000, [1000]),
    "owner_g3000": (1000, 1000, [1000, 3000]),
    "member": (1001, 1001, [1001, 1000]),
    "other": (1002, 1002, [1002]),
    "root": (0, 0, [0]),
}

_libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD = -100
UTIME_NOW = (1 << 30) - 1
UTIME_OMIT = (1 << 30) - 2


class Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


def _check(ret):
    if ret != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def utimensat(path, atime_nsec, mtime_nsec):
    ts = (Timespec * 2)(Timespec(0, atime_nsec), Timespec(0, mtime_nsec))
    _libc.utimensat.argtypes = [ctypes.c_int, ctypes.c_char_p,
                                ctypes.POINTER(Timespec), ctypes.c_int]
    _check(_libc.utimensat(AT_FDCWD, os.fsencode(path), ts, 0))


def access(path, how):
    # libc access(2) directly, so the errno is visible (os.access gives a bool).
    # access() checks the real ids; after setresuid/setresgid they equal the
    # effective ones.
    _libc.access.argtypes = [ctypes.c_char_p, ctypes.c_int]
    _check(_libc.access(os.fsencode(path), how))


# ---------------------------------------------------------------- ops
# Each op takes a path resolver P(rel) -> absolute path and does one syscall.

def op_create(rel):
    def op(P):
        os.close(os.open(P(rel), os.O_CREAT | os.O_WRONLY, 0o644))
    return op


def op_write(rel):
    def op(P):
        fd = os.open(P(rel), os.O_WRONLY)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
    return op


def op_mkdir(rel):
    return lambda P: os.mkdir(P(rel), 0o755)


def op_unlink(rel):
    return lambda P: os.unlink(P(rel))


def op_rmdir(rel):
    return lambda P: os.rmdir(P(rel))


def op_rename(a, b):
    return lambda P: os.rename(P(a), P(b))


def op_link(a, b):
    return lambda P: os.link(P(a), P(b))


def op_chmod(rel, mode):
    return lambda P: os.chmod(P(rel), mode)


def op_chown(rel, uid, gid):
    return lambda P: os.chown(P(rel), uid, gid)


def op_utime(rel, times):
    return lambda P: os.utime(P(rel), times)


def op_utimensat(rel, a, m):
    return lambda P: utimensat(P(rel), a, m)


def op_truncate(rel, size):
    return lambda P: os.truncate(P(rel), size)


def op_setxattr(rel, name, value):
    return lambda P: os.setxattr(P(rel), name, value)


def op_removexattr(rel, name):
    return lambda P: os.removexattr(P(rel), name)


def op_access(rel, how):
    return lambda P: access(P(rel), how)


# ---------------------------------------------------------------- setup
# Setup items, applied in order by root:
#   ("dir",  rel, uid, gid, mode)
#   ("file", rel, uid, gid, mode)
#   ("xattr", rel, name, value)
# chown happens before chmod (chown would clear setuid/setgid bits otherwise).
# Directory modes are applied at the end (after children exist), although
# root would not need it.

def D(rel, mode, uid=1000, gid=1000):
    return ("dir", rel, uid, gid, mode)


def F(rel, mode, uid=1000, gid=1000):
    return ("file", rel, uid, gid, mode)


def X(rel, name, value):
    return ("xattr", rel, name, value)


def build(base, setup):
    modes = []
    for item in setup:
        kind, rel = item[0], item[1]
        p = os.path.join(base, rel)
        if kind == "dir":
            os.mkdir(p, 0o700)
        elif kind == "file":
            os.close(os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        elif kind == "xattr":
            os.setxattr(p, item[2], item[3])
            continue
        else:
            raise ValueError(kind)
        _, _, uid, gid, mode = item
        os.chown(p, uid, gid)
        if kind == "file":
            os.chmod(p, mode)
            assert stat.S_IMODE(os.stat(p).st_mode) == mode, p
        else:
            modes.append((p, mode))
    # directories last, deepest first (root does not need it, but keep the
    # final state exactly as specified)
    for p, mode in reversed(modes):
        os.chmod(p, mode)
        assert stat.S_IMODE(os.stat(p).st_mode) == mode, p


# ---------------------------------------------------------------- cases

class Case:
    def __init__(self, cid, caller, setup, op, mode_of=None, group=None):
        self.id = cid
        self.caller = caller
        self.setup = setup
        self.op = op
        self.mode_of = mode_of
        self.group = group  # "link" / "xattr" / None


def cases():
    C = []

    def add(*a, **kw):
        C.append(Case(*a, **kw))

    # create
    for who in ("owner", "member", "other", "root"):
        add(f"create_0755_{who}", who, [D("d", 0o755)], op_create("d/new"))
    for who in ("member", "other"):
        add(f"create_0775_{who}", who, [D("d", 0o775)], op_create("d/new"))
    for who in ("member", "other"):
        add(f"create_0757_{who}", who, [D("d", 0o757)], op_create("d/new"))
    add("create_0333_owner", "owner", [D("d", 0o333)], op_create("d/new"))
    add("create_0666_owner", "owner", [D("d", 0o666)], op_create("d/new"))
    add("create_0000_root", "root", [D("d", 0o000)], op_create("d/new"))

    # mkdir
    add("mkdir_exists_0555_owner", "owner", [D("d", 0o555), D("d/e", 0o755)],
        op_mkdir("d/e"))
    add("mkdir_exists_0444_owner", "owner", [D("d", 0o444), D("d/e", 0o755)],
        op_mkdir("d/e"))
    add("mkdir_new_0555_owner", "owner", [D("d", 0o555)], op_mkdir("d/new"))

    # unlink / rmdir
    for who in ("other", "owner", "member"):
        add(f"unlink_0755_{who}", who, [D("d", 0o755), F("d/f", 0o644)],
            op_unlink("d/f"))
    add("unlink_missing_0644_owner", "owner", [D("d", 0o644)],
        op_unlink("d/missing"))
    add("unlink_missing_0755_other", "other", [D("d", 0o755)],
        op_unlink("d/missing"))
    add("unlink_0300_owner", "owner", [D("d", 0o300), F("d/f", 0o644)],
        op_unlink("d/f"))
    sticky = [D("d", 0o1777), F("d/f", 0o644, 1001, 1001)]
    for cid, who in (("other", "other"), ("fileowner", "member"),
                     ("dirowner", "owner"), ("root", "root")):
        add(f"sticky_unlink_{cid}", who, sticky, op_unlink("d/f"))
    add("sticky_rmdir_other", "other",
        [D("d", 0o1777), D("d/s", 0o755, 1001, 1001)], op_rmdir("d/s"))
    add("rmdir_0555_owner", "owner", [D("d", 0o555), D("d/s", 0o755)],
        op_rmdir("d/s"))

    # rename
    add("rename_same_0755_other", "other", [D("d", 0o755), F("d/f", 0o644)],
        op_rename("d/f", "d/g"))
    add("rename_into_0755_other", "other",
        [D("d1", 0o777), F("d1/f", 0o644, 1002, 1002), D("d2", 0o755)],
        op_rename("d1/f", "d2/f"))
    rdir = [D("d1", 0o777), D("d2", 0o777), D("d1/s", 0o555)]
    add("rename_dir_newparent_0555_owner", "owner", rdir,
        op_rename("d1/s", "d2/s"))
    add("rename_dir_sameparent_0555_owner", "owner", rdir,
        op_rename("d1/s", "d1/t"))
    add("rename_dir_newparent_0555_root", "root", rdir,
        op_rename("d1/s", "d2/s"))
    add("rename_sticky_target_other", "other",
        [D("d1", 0o777), D("d2", 0o1777), F("d2/t", 0o644, 1001, 1001),
         F("d1/f", 0o644, 1002, 1002)],
        op_rename("d1/f", "d2/t"))
    add("rename_sticky_source_other", "other",
        [D("d", 0o1777), F("d/f", 0o644, 1001, 1001)],
        op_rename("d/f", "d/g"))

    # link (run with protected_hardlinks=0, and again =1 as *_ph1)
    add("link_other_0755_other", "other",
        [D("d", 0o755), D("d2", 0o777), F("d2/f2", 0o644, 1002, 1002)],
        op_link("d2/f2", "d/l"), group="link")
    add("link_foreign_file_other", "other",
        [D("d", 0o777), F("d/f", 0o600)], op_link("d/f", "d/l"), group="link")
    add("link_foreign_suid_other", "other",
        [D("d", 0o777), F("d/f", 0o4755)], op_link("d/f", "d/l"), group="link")

    # chmod
    for cid, who in (("nonowner", "other"), ("owner", "owner"),
                     ("root", "root")):
        add(f"chmod_{cid}", who, [D("d", 0o755), F("d/f", 0o644)],
            op_chmod("d/f", 0o600), mode_of="d/f")
    add("chmod_sgid_notingroup_owner", "owner",
        [D("d", 0o755), F("d/f", 0o644, 1000, 2000)],
        op_chmod("d/f", 0o2755), mode_of="d/f")
    add("chmod_sgid_ingroup_member", "member",
        [D("d", 0o755), F("d/f", 0o644, 1001, 1000)],
        op_chmod("d/f", 0o2755), mode_of="d/f")
    add("chmod_sgid_notingroup_root", "root",
        [D("d", 0o755), F("d/f", 0o644, 1000, 2000)],
        op_chmod("d/f", 0o2755), mode_of="d/f")

    # chown / chgrp
    f644 = [D("d", 0o755), F("d/f", 0o644)]
    add("chown_uid_owner", "owner", f644, op_chown("d/f", 1002, -1))
    add("chown_sameuid_owner", "owner", f644, op_chown("d/f", 1000, -1))
    add("chown_sameuid_other", "other", f644, op_chown("d/f", 1000, -1))
    add("chown_uid_root", "root", f644, op_chown("d/f", 1002, -1))
    add("chgrp_member_group_owner", "owner_g3000", f644,
        op_chown("d/f", -1, 3000))
    add("chgrp_nonmember_group_owner", "owner", f644,
        op_chown("d/f", -1, 3000))
    add("chgrp_same_gid_other", "other", f644, op_chown("d/f", -1, 1000))
    f6755 = [D("d", 0o755), F("d/f", 0o6755)]
    add("chown_clears_suid_root", "root", f6755, op_chown("d/f", 1002, -1),
        mode_of="d/f")
    add("chown_clears_suid_owner_chgrp", "owner_g3000", f6755,
        op_chown("d/f", -1, 3000), mode_of="d/f")
    add("chown_sgid_nogx_root", "root", [D("d", 0o755), F("d/f", 0o2745)],
        op_chown("d/f", 1002, -1), mode_of="d/f")
    add("chown_dir_suid_root", "root", [D("d", 0o755), D("d/s", 0o6755)],
        op_chown("d/s", 1002, -1), mode_of="d/s")
    add("chown_noop_root", "root", f6755, op_chown("d/f", -1, -1),
        mode_of="d/f")

    # times
    f666 = [D("d", 0o755), F("d/f", 0o666)]
    add("utimes_explicit_nonowner_writable", "other", f666,
        op_utime("d/f", (1, 2)))
    add("utimes_explicit_owner", "owner", f666, op_utime("d/f", (1, 2)))
    add("utimes_now_nonowner_writable", "other", f666, op_utime("d/f", None))
    add("utimes_now_nonowner_readonly", "other", f644, op_utime("d/f", None))
    add("utimes_now_owner_readonly", "owner",
        [D("d", 0o755), F("d/f", 0o444)], op_utime("d/f", None))
    add("utimens_now_omit_nonowner_writable", "other", f666,
        op_utimensat("d/f", UTIME_NOW, UTIME_OMIT))

    # truncate / write
    add("truncate_other_readonly", "other", f644, op_truncate("d/f", 0))
    add("truncate_other_writable", "other", f666, op_truncate("d/f", 0))
    f6777 = [D("d", 0o755), F("d/f", 0o6777)]
    add("truncate_clears_suid_other", "other", f6777, op_truncate("d/f", 1),
        mode_of="d/f")
    add("truncate_sgid_nogx_other", "other",
        [D("d", 0o755), F("d/f", 0o2767)], op_truncate("d/f", 1),
        mode_of="d/f")
    add("truncate_suid_root", "root", f6777, op_truncate("d/f", 1),
        mode_of="d/f")
    add("truncate_suid_owner", "owner", f6777, op_truncate("d/f", 1),
        mode_of="d/f")
    for who in ("other", "root", "owner"):
        cid = "write_clears_suid_other" if who == "other" else f"write_suid_{who}"
        add(cid, who, f6777, op_write("d/f"), mode_of="d/f")

    # xattrs
    add("setxattr_user_other_readonly", "other", f644,
        op_setxattr("d/f", "user.x", b"1"), group="xattr")
    add("setxattr_user_other_writable", "other", f666,
        op_setxattr("d/f", "user.x", b"1"), group="xattr")
    add("setxattr_user_owner", "owner", f644,
        op_setxattr("d/f", "user.x", b"1"), group="xattr")
    add("setxattr_trusted_owner", "owner", f644,
        op_setxattr("d/f", "trusted.x", b"1"), group="xattr")
    add("setxattr_trusted_root", "root", f644,
        op_setxattr("d/f", "trusted.x", b"1"), group="xattr")
    add("setxattr_user_sticky_dir_other", "other",
        [D("d", 0o755), D("d/s", 0o1777)],
        op_setxattr("d/s", "user.x", b"1"), group="xattr")
    add("removexattr_user_other_readonly", "other",
        f644 + [X("d/f", "user.x", b"1")],
        op_removexattr("d/f", "user.x"), group="xattr")

    # access(2)
    f400 = [D("d", 0o755), F("d/f", 0o400)]
    for name, how in (("R", os.R_OK), ("W", os.W_OK), ("X", os.X_OK)):
        add(f"access_{name}_owner_0400", "owner", f400, op_access("d/f", how))
    f000 = [D("d", 0o755), F("d/f", 0o000)]
    add("access_W_root_0000", "root", f000, op_access("d/f", os.W_OK))
    add("access_R_root_0000", "root", f000, op_access("d/f", os.R_OK))
    add("access_X_root_file_0000", "root", f000, op_access("d/f", os.X_OK))
    add("access_X_root_file_0010", "root", [D("d", 0o755), F("d/f", 0o010)],
        op_access("d/f", os.X_OK))
    add("access_X_root_dir_0000", "root", [D("d", 0o755), D("d/s", 0o000)],
        op_access("d/s", os.X_OK))
    add("access_W_member_0460", "member", [D("d", 0o755), F("d/f", 0o460)],
        op_access("d/f", os.W_OK))
    add("access_R_owner_0040", "owner", [D("d", 0o755), F("d/f", 0o040)],
        op_access("d/f", os.R_OK))
    return C


# ---------------------------------------------------------------- runner

def run_as(caller, op, P):
    uid, gid, groups = USERS[caller]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        res = "EXC:unknown"
        try:
            os.close(r)
            os.setgroups(groups)
            os.setresgid(gid, gid, gid)
            os.setresuid(uid, uid, uid)
            assert os.getresuid() == (uid, uid, uid)
            assert os.getresgid() == (gid, gid, gid)
            assert sorted(os.getgroups()) == sorted(groups)
            try:
                op(P)
                res = "ok"
            except OSError as e:
                res = errno.errorcode.get(e.errno, str(e.errno))
        except BaseException as e:  # setup failure in the child
            res = f"EXC:{type(e).__name__}:{e}"
        finally:
            try:
                os.write(w, res.encode())
            finally:
                os._exit(0)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status = os.waitpid(pid, 0)
    out = b"".join(chunks).decode()
    if not out:
        out = f"EXC:child_status_{status}"
    return out


def run_case(top, case, suffix=""):
    cid = case.id + suffix
    base = os.path.join(top, cid)
    os.mkdir(base)
    os.chmod(base, 0o755)  # root-owned, traversable by everyone
    build(base, case.setup)

    def P(rel):
        return os.path.join(base, rel)

    res = run_as(case.caller, case.op, P)
    mode = "-"
    if case.mode_of:
        try:
            mode = "%04o" % stat.S_IMODE(os.lstat(P(case.mode_of)).st_mode)
        except FileNotFoundError:
            mode = "absent"
    print(f"{cid}\t{res}\t{mode}", flush=True)
    return res


def read_sysctl(path):
    with open(path) as f:
        return f.read().strip()


def write_sysctl(path, value):
    with open(path, "w") as f:
        f.write(str(value))
    got = read_sysctl(path)
    if got != str(value):
        raise RuntimeError(f"{path}: wrote {value}, reads {got}")


def fstype(path):
    try:
        return subprocess.run(["findmnt", "-n", "-o", "FSTYPE", "-T", path],
                              capture_output=True, text=True,
                              check=True).stdout.split("\n")[0].strip()
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "?"


def find_ext4_dir():
    for cand in ("/tmp", "/var/tmp", "/work", "/root", "/"):
        if os.path.isdir(cand) and fstype(cand) == "ext4":
            return cand
    return None


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)


def main():
    if os.geteuid() != 0:
        sys.exit("must run as root")
    force_ext4 = "--ext4-xattr" in sys.argv[1:]
    signal.signal(signal.SIGTERM, _sigterm)
    signal.signal(signal.SIGHUP, _sigterm)

    kernel = subprocess.run(["uname", "-r"], capture_output=True, text=True,
                            check=True).stdout.strip()
    ph_orig = read_sysctl(PROTECTED_HARDLINKS)
    pr_orig = read_sysctl(PROTECTED_REGULAR)
    print(f"# kernel (uname -r): {kernel}")
    print(f"# fs.protected_hardlinks={ph_orig} fs.protected_regular={pr_orig}"
          " (values at start)")
    print("# users: owner=1000:1000[1000] member=1001:1001[1001,1000]"
          " other=1002:1002[1002] root=0:0[0]; owner_g3000=1000:1000[1000,3000]")
    print("# columns: case_id<TAB>result<TAB>mode_after_or_-")

    all_cases = cases()
    tops = []
    try:
        top = tempfile.mkdtemp(prefix="perm-oracle-", dir="/dev/shm")
        tops.append(top)
        os.chmod(top, 0o777)
        print(f"# temp dir fs: {fstype(top)}")

        xattr_unsupported = False
        for case in all_cases:
            if case.group == "link":
                continue
            res = run_case(top, case)
            if case.group == "xattr" and res == "EOPNOTSUPP":
                xattr_unsupported = True

        links = [c for c in all_cases if c.group == "link"]
        try:
            print("# link_* below: fs.protected_hardlinks=0;"
                  " *_ph1: fs.protected_hardlinks=1")
            write_sysctl(PROTECTED_HARDLINKS, 0)
            for case in links:
                run_case(top, case)
            write_sysctl(PROTECTED_HARDLINKS, 1)
            for case in links:
                run_case(top, case, "_ph1")
        finally:
            write_sysctl(PROTECTED_HARDLINKS, ph_orig)

        if xattr_unsupported or force_ext4:
            ext4 = find_ext4_dir()
            if ext4 is None:
                print("# xattr on ext4: no ext4 directory found")
            else:
                top4 = tempfile.mkdtemp(prefix="perm-oracle-", dir=ext4)
                tops.append(top4)
                os.chmod(top4, 0o777)
                print(f"# xattr cases repeated on ext4 ({ext4}), ids *_ext4")
                for case in all_cases:
                    if case.group == "xattr":
                        run_case(top4, case, "_ext4")
    finally:
        for t in tops:
            shutil.rmtree(t, ignore_errors=True)
        if read_sysctl(PROTECTED_HARDLINKS) != ph_orig:
            write_sysctl(PROTECTED_HARDLINKS, ph_orig)
    print(f"# fs.protected_hardlinks restored to "
          f"{read_sysctl(PROTECTED_HARDLINKS)}; temp dirs removed")


if __name__ == "__main__":
    main()

"""Confine the current process before it runs a command: the kernel side of fastcode's sandbox.

Called in a child process just before exec (the `run` tool, test commands, the warm test runner itself) and again,
narrower, in each forked child of a confined warm runner (`nested`: Landlock stacks a second ruleset; namespaces and
mounts are the runner's), so it costs microseconds and needs no extra binary. It applies a spec (a JSON-able dict
built by `fastcode.sandbox.policy`):

- a session of its own (no controlling terminal: nothing typed into the user's terminal with TIOCSTI);
- namespaces (where unprivileged user namespaces work): a user namespace mapping the caller's own uid and gid, a mount
  namespace in which each path of `readonly` (`.git`, `.fastcode/`, `.fastcode.toml`) is bind-mounted read-only and
  /dev/shm is a private tmpfs, an IPC namespace of its own, and, without network, an empty network namespace whose
  loopback is up (local servers a test starts still work; abstract unix sockets outside are out of reach);
- Landlock: the whole file system readable and executable but `hidden` (fastcode's own cache), writes only beneath
  `writable` and to a few character
  devices (/dev/null, the tty...); without network and without a network namespace, TCP bind and connect refused
  (ABI 4+); signals and abstract unix sockets scoped to the sandbox (ABI 6+);
- no capabilities left (the bounding set cleared): root inside cannot set file capabilities, write block devices
  it owns or inject terminal input.

Standard library only and compatible with Python 3.8: the warm runner loads this file by path under the repository's
own interpreter. Everything is resolved before the fork where possible; nothing here imports.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import socket
import struct

# Landlock (include/uapi/linux/landlock.h); the syscall numbers are the same on every architecture fastcode runs on.
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH, _RULE_NET_PORT = 1, 2
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_MAKE_AND_REMOVE = sum(1 << bit for bit in range(4, 13))  # remove dir/file, make char/dir/reg/sock/fifo/block/sym
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1
_PR_SET_NO_NEW_PRIVS = 38

# Namespaces and mounts (sched.h, mount.h)
_CLONE_NEWNS, _CLONE_NEWIPC, _CLONE_NEWUSER, _CLONE_NEWNET = 0x00020000, 0x08000000, 0x10000000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_NOEXEC = 1, 2, 4, 8
_MS_REMOUNT, _MS_BIND, _MS_REC, _MS_SLAVE = 32, 4096, 16384, 1 << 19
_MS_NOATIME, _MS_NODIRATIME, _MS_RELATIME = 1024, 2048, 1 << 21
_ST_TO_MS = ((1, _MS_RDONLY), (2, _MS_NOSUID), (4, _MS_NODEV), (8, _MS_NOEXEC), (1024, _MS_NOATIME),
             (2048, _MS_NODIRATIME), (4096, _MS_RELATIME))  # fmt: skip
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_PR_CAPBSET_DROP, _PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
_CAP_VERSION_3 = 0x20080522
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")
"""The device files commands may write (and use terminal ioctls on /dev/tty, which after `setsid` is none); no other
device under /dev: not the user's other terminals (/dev/pts), not block devices, not /dev/kmsg."""

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class SandboxError(OSError):
    """The sandbox could not be applied: the command must not run."""


def _check(result: int, what: str) -> int:
    if result < 0:
        code = ctypes.get_errno()
        raise SandboxError(code, f"sandbox: {what} failed: {os.strerror(code)}")
    return result


def landlock_abi() -> int:
    """The Landlock ABI version the kernel offers (0: none, or disabled)."""
    version = _libc.syscall(_SYS_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def fs_rights(abi: int) -> int:
    """Every file-system right the ABI knows (all handled, so nothing is allowed unless a rule says so)."""
    rights = EXECUTE | WRITE_FILE | READ_FILE | READ_DIR | _MAKE_AND_REMOVE
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    if abi >= 5:
        rights |= IOCTL_DEV
    return rights


def _add_path(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path that does not exist needs no rule
    try:
        if not os.path.isdir(path):  # a file takes only the rights that apply to files
            access &= WRITE_FILE | READ_FILE | EXECUTE | TRUNCATE | IOCTL_DEV
        attr = struct.pack("=Qi", access, fd)
        _check(_libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, attr, 0), "landlock_add_rule " + path)
    finally:
        os.close(fd)


def _read_everything_but(ruleset: int, read: int, hidden: list) -> None:
    """Read access to the whole file system except beneath the `hidden` folders (fastcode's cache: the test runners'
    tokens). Landlock only grants, so: listing everywhere, and read rules on every entry beside the path down to each
    hidden folder (≈ 100 rules, a fraction of a millisecond)."""
    missing = [h for h in hidden if not os.path.isdir(h)]
    if missing:  # created later, it would be readable: fail closed
        raise SandboxError(errno.ENOENT, f"sandbox: the folder to hide does not exist: {missing[0]}")
    hidden = {os.path.realpath(h) for h in hidden}
    if not hidden:
        _add_path(ruleset, "/", read)
        return
    _add_path(ruleset, "/", READ_DIR)
    ancestors = set()
    for path in hidden:
        while path != "/":
            path = os.path.dirname(path)
            ancestors.add(path)
    for folder in ancestors:
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            entry = os.path.join(folder, name)
            target = os.path.realpath(entry)  # a symlink beside the path must not lead back into it
            if entry in ancestors or entry in hidden or target in ancestors:
                continue
            if any(target == h or target.startswith(h + os.sep) for h in hidden):
                continue
            _add_path(ruleset, entry, read)


def _landlock(spec: dict) -> None:
    abi = int(spec.get("landlock_abi") or 0)
    if abi <= 0:
        return
    handled = fs_rights(abi)
    net = 0
    if abi >= 4 and not spec.get("network") and not spec.get("netns"):
        net = NET_BIND_TCP | NET_CONNECT_TCP
    scoped = SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0
    attr = struct.pack("=QQQ", handled, net, scoped)[: 24 if abi >= 6 else 16 if abi >= 4 else 8]
    ruleset = _check(_libc.syscall(_SYS_CREATE_RULESET, attr, ctypes.c_size_t(len(attr)), 0), "landlock_create_ruleset")
    try:
        read = EXECUTE | READ_FILE | READ_DIR
        _read_everything_but(ruleset, read, spec.get("hidden") or ())
        for device in DEVICES:
            _add_path(ruleset, device, read | WRITE_FILE | (IOCTL_DEV if abi >= 5 and device == "/dev/tty" else 0))
        for path in spec.get("writable") or ():
            _add_path(ruleset, path, handled)
        for port in spec.get("ports") or ():
            if net:
                rule = struct.pack("=QQ", NET_CONNECT_TCP, int(port))
                _check(_libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_NET_PORT, rule, 0), "landlock port rule")
        _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
        _check(_libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _mount_flags(path: str) -> int:
    flags = os.statvfs(path).f_flag
    return sum(ms for st, ms in _ST_TO_MS if flags & st)


def _readonly(path: str) -> None:
    """Bind `path` (a folder or a file) over itself and remount the bind read-only (keeping the flags a user namespace
    may not clear). A symlink is not followed: it could lead anywhere."""
    if os.path.islink(path):
        raise SandboxError(errno.ELOOP, f"sandbox: {path} is a symlink")
    name = path.encode()
    _check(_libc.mount(name, name, None, _MS_BIND | _MS_REC, None), "bind mount " + path)
    flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _mount_flags(path)
    _check(_libc.mount(None, name, None, flags, None), "read-only remount " + path)


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14x", b"lo", 0)
        flags = struct.unpack("16sH14x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", flags | _IFF_UP))


def _namespaces(spec: dict) -> None:
    readonly = [p for p in spec.get("readonly") or () if os.path.exists(p)]
    netns = bool(spec.get("netns")) and not spec.get("network")
    if not spec.get("userns") or not (readonly or netns):
        return
    uid, gid = os.geteuid(), os.getegid()
    flags = _CLONE_NEWUSER | _CLONE_NEWNS | _CLONE_NEWIPC | (_CLONE_NEWNET if netns else 0)
    _check(_libc.unshare(flags), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    _check(_libc.mount(None, b"/", None, _MS_REC | _MS_SLAVE, None), "mount propagation")
    for path in readonly:
        _readonly(path)
    if os.path.isdir("/dev/shm"):  # the host's shared memory stays out of reach; multiprocessing gets its own
        _check(_libc.mount(b"tmpfs", b"/dev/shm", b"tmpfs", _MS_NOSUID | _MS_NODEV, b"mode=1777"), "mount /dev/shm")
    if netns:
        _loopback_up()


def _drop_capabilities() -> None:
    """Clear the bounding set (nothing executed regains a capability, root included) and this process's sets."""
    for cap in range(64):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the last capability this kernel knows
    _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    number = _SYS_CAPSET.get(os.uname().machine)
    if number is not None:
        header, data = struct.pack("=Ii", _CAP_VERSION_3, 0), bytes(24)  # two all-zero __user_cap_data_struct
        _check(_libc.syscall(number, header, data), "capset")


def _new_session() -> None:
    with contextlib.suppress(OSError):  # already a session leader (the run tool starts one): no terminal either way
        os.setsid()


def confine(spec: dict) -> None:
    """Apply `spec` to this process (and so to everything it executes). Raises SandboxError when any part fails:
    a command that was to run confined never runs unconfined."""
    if not spec or spec.get("mode", "off") == "off":
        return
    os.environ.update(spec.get("env") or {})  # the private TMPDIR, for a forked child that inherited another
    try:
        _new_session()
        if not spec.get("nested"):  # inside a confined warm runner: its namespaces hold, and mounts are denied
            _namespaces(spec)
        _landlock(spec)
        _drop_capabilities()
    except SandboxError:
        raise
    except OSError as exc:
        raise SandboxError(exc.errno or errno.EPERM, f"sandbox: {exc}") from None

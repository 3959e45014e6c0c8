"""Run a command on a "kernel without Landlock": a seccomp filter makes the three Landlock syscalls fail with ENOSYS
(as on a kernel built without it), then the command is exec'd. Usage: python no_landlock.py PROGRAM ARGS..."""

from __future__ import annotations

import ctypes
import os
import struct
import sys

_LD_W_ABS, _JGE, _JGT, _RET = 0x20, 0x35, 0x25, 0x06
_ENOSYS, _RET_ERRNO, _RET_ALLOW = 38, 0x00050000, 0x7FFF0000
_PR_SET_NO_NEW_PRIVS, _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 38, 22, 2


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def block_landlock() -> None:
    program = b"".join(
        [
            _insn(_LD_W_ABS, 0, 0, 0),  # the syscall number
            _insn(_JGE, 0, 2, 444),  # below landlock_create_ruleset: allow
            _insn(_JGT, 1, 0, 446),  # above landlock_restrict_self: allow
            _insn(_RET, 0, 0, _RET_ERRNO | _ENOSYS),
            _insn(_RET, 0, 0, _RET_ALLOW),
        ]
    )
    buffer = ctypes.create_string_buffer(program)
    fprog = struct.pack("=HxxxxxxQ", len(program) // 8, ctypes.addressof(buffer))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) or libc.prctl(
        _PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.c_char_p(fprog), 0, 0
    ):
        raise OSError(ctypes.get_errno(), "seccomp")


if __name__ == "__main__":
    block_landlock()
    os.execvp(sys.argv[1], sys.argv[1:])

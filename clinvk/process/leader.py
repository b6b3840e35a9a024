# -*- test-case-name: tests.process.test_leader,tests.integration.test_leader -*-
"""
Starting a child directly as the leader of a session of its own, with no
program in between (docs/design-notes.md#spawn-group-leader).

Twisted's POSIX C{Process} already starts its children with
C{posix_spawnp} where it can, which costs the same whatever the size of the
server; what it offers no way to ask for is a new session, and it falls
back to C{fork} (about five times slower than C{exec}ing a launcher, in
Python) whenever the working directory is not the server's.  So
L{LeaderSpawner} makes Twisted's C{Process} with one method replaced: the
one that creates the child, which here calls the C library's
C{posix_spawnp} through C{ctypes} with:

  - C{POSIX_SPAWN_SETSID}: the child leads a new session and process
    group, so one signal reaches it and everything it starts;
  - C{posix_spawn_file_actions_addchdir_np}: it starts in the run's working
    directory, without falling back to C{fork};
  - the descriptor actions and signal resets Twisted computes for its own
    C{posix_spawnp}: the child gets exactly the pipes it is given, and the
    default disposition of every signal the server ignores.

No Python code runs in the child.  The child is the server's direct child,
as with a plain C{spawnProcess}: its exit status, signal dispositions and
start failures are its own.  There is no parent-death signal on this path
(C{posix_spawn} has no attribute for it); the server's group reaper
(L{clinvk.process.reaper}) ends the groups of a server that died
(docs/design/decisions.md#d6-no-orphans).

This needs Linux (the flag values below are those of glibc and musl), a C
library with C{addchdir_np} (glibc 2.29, musl 1.1.24) and Twisted's
private helpers for the descriptor actions; L{PosixSpawn.load} returns
L{None} where any of these is missing, and L{clinvk.process.spawn.Launcher}
then uses its launcher programs instead.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.internet.interfaces import IProcessProtocol, IProcessTransport, IReactorProcess
from twisted.logger import Logger
from zope.interface import implementer

log = Logger()

# <spawn.h> of glibc and musl on Linux.
_POSIX_SPAWN_SETSIGDEF = 0x04
_POSIX_SPAWN_SETSID = 0x80

# Room for posix_spawn_file_actions_t, posix_spawnattr_t and sigset_t,
# which the C library alone reads and writes (80, 336 and 128 bytes with
# glibc on x86-64), 8-byte aligned.
_Opaque = ctypes.c_uint64 * 128

# The actions of Twisted's _getFileActions, as this module numbers them.
_CLOSE = 0
_DUP2 = 1

_CharArray = ctypes.POINTER(ctypes.c_char_p)


def _check(result: int, what: str) -> None:
    if result != 0:
        raise OSError(result, f"{what}: {os.strerror(result)}")


def _text(value: str | bytes) -> bytes:
    return os.fsencode(value)


class PosixSpawn:
    """
    The C library's C{posix_spawnp}, with a new session and a working
    directory.  Made by L{load}.
    """

    def __init__(self, libc: ctypes.CDLL, twisted_process: Any) -> None:
        self._libc = libc
        self._process = twisted_process
        void, integer = ctypes.c_void_p, ctypes.c_int
        for name, arguments in (
            ("posix_spawn_file_actions_init", [void]),
            ("posix_spawn_file_actions_destroy", [void]),
            ("posix_spawn_file_actions_addclose", [void, integer]),
            ("posix_spawn_file_actions_adddup2", [void, integer, integer]),
            ("posix_spawn_file_actions_addchdir_np", [void, ctypes.c_char_p]),
            ("posix_spawnattr_init", [void]),
            ("posix_spawnattr_destroy", [void]),
            ("posix_spawnattr_setflags", [void, ctypes.c_short]),
            ("posix_spawnattr_setsigdefault", [void, void]),
            ("sigemptyset", [void]),
            ("sigaddset", [void, integer]),
            ("posix_spawnp", [ctypes.POINTER(integer), ctypes.c_char_p, void, void, _CharArray, _CharArray]),
        ):
            function = getattr(libc, name)
            function.argtypes = arguments
            function.restype = integer

    @classmethod
    def load(cls, platform: str = sys.platform) -> PosixSpawn | None:
        """
        The C library's C{posix_spawnp} with what clinvk needs of it, or
        L{None} where this system or the installed Twisted lacks any of it.
        """
        if not platform.startswith("linux"):
            return None
        try:
            from twisted.internet import process

            # What LeaderProcess relies on of Twisted's POSIX Process.
            for name in ("Process", "_getFileActions", "_listOpenFDs"):
                getattr(process, name)
            if not callable(getattr(process.Process, "_fork", None)):
                return None
            # The symbols of the process, the C library's among them.
            return cls(ctypes.CDLL(None, use_errno=True), process)
        except (ImportError, OSError, AttributeError):
            return None

    def file_actions(self, fdmap: Mapping[int, int]) -> list[tuple[int, ...]]:
        """
        What the child's descriptors must become, as Twisted works it out
        for its own C{posix_spawnp}: C{fdmap} (the child's descriptor to
        the server's) dup'ed into place, every other inheritable one closed.
        """
        state = []
        for fd in self._process._listOpenFDs():
            try:
                state.append((fd, fcntl.fcntl(fd, fcntl.F_GETFD, fcntl.FD_CLOEXEC)))
            except OSError:
                # Listing the descriptors opened one of its own, now closed.
                pass
        actions: list[tuple[int, ...]] = self._process._getFileActions(
            state, dict(fdmap), doClose=_CLOSE, doDup2=_DUP2
        )
        return actions

    def spawn(
        self,
        executable: str | bytes,
        args: Sequence[str | bytes],
        environment: Mapping[Any, Any],
        path: str | bytes | None,
        actions: Sequence[tuple[int, ...]],
        *,
        session: bool = True,
    ) -> int:
        """
        Start C{executable} (looked up on the server's C{PATH} if it has no
        slash) as the leader of a new session.

        @param path: The working directory, or L{None} for the server's.
        @param actions: From L{file_actions}.
        @param session: Whether the child starts a new session: always,
            but in the test of L{LeaderSpawner}'s check that it did.
        @return: The child's pid.
        @raise OSError: When it could not be started (the program is
            missing or cannot be run, C{path} does not exist…).
        """
        libc = self._libc
        file_actions, attributes, default = _Opaque(), _Opaque(), _Opaque()
        _check(libc.posix_spawn_file_actions_init(file_actions), "posix_spawn_file_actions_init")
        try:
            _check(libc.posix_spawnattr_init(attributes), "posix_spawnattr_init")
            try:
                for action in actions:
                    if action[0] == _CLOSE:
                        _check(libc.posix_spawn_file_actions_addclose(file_actions, action[1]), "addclose")
                    else:
                        _check(
                            libc.posix_spawn_file_actions_adddup2(file_actions, action[1], action[2]),
                            "adddup2",
                        )
                if path is not None:
                    _check(libc.posix_spawn_file_actions_addchdir_np(file_actions, _text(path)), "addchdir")
                # The signals the server ignores get their default action
                # back, as Twisted does for its children.
                _check(libc.sigemptyset(default), "sigemptyset")
                for number in range(1, signal.NSIG):
                    if signal.getsignal(number) == signal.SIG_IGN:
                        _check(libc.sigaddset(default, number), "sigaddset")
                _check(libc.posix_spawnattr_setsigdefault(attributes, default), "setsigdefault")
                flags = _POSIX_SPAWN_SETSIGDEF | (_POSIX_SPAWN_SETSID if session else 0)
                _check(libc.posix_spawnattr_setflags(attributes, flags), "setflags")
                argv = (ctypes.c_char_p * (len(args) + 1))(*[_text(arg) for arg in args], None)
                pairs = [_text(key) + b"=" + _text(value) for key, value in environment.items()]
                envp = (ctypes.c_char_p * (len(pairs) + 1))(*pairs, None)
                pid = ctypes.c_int()
                result = libc.posix_spawnp(
                    ctypes.byref(pid), _text(executable), file_actions, attributes, argv, envp
                )
                if result != 0:
                    raise OSError(result, os.strerror(result), os.fsdecode(executable))
                return pid.value
            finally:
                libc.posix_spawnattr_destroy(attributes)
        finally:
            libc.posix_spawn_file_actions_destroy(file_actions)


def _leader_process(posix_spawn: PosixSpawn) -> type:
    """
    Twisted's POSIX C{Process} whose child is made by C{posix_spawn}.
    Defined on first use: Twisted's process module exists on POSIX only.
    """
    from twisted.internet.process import Process

    class LeaderProcess(Process):
        """
        A C{Process} started with L{PosixSpawn}: Twisted makes the pipes,
        reads and writes them and reaps the child as for any other.
        """

        def _fork(
            self,
            path: str | bytes | None,
            uid: int | None,
            gid: int | None,
            executable: str | bytes,
            args: Sequence[str | bytes],
            environment: Mapping[Any, Any] | None,
            **kwargs: Any,
        ) -> None:
            # Called by Process.__init__ once the pipes exist, to make the
            # child (instead of posix_spawnp or fork and exec).
            self.pid = posix_spawn.spawn(
                executable,
                args,
                os.environ if environment is None else environment,
                path,
                posix_spawn.file_actions(kwargs["fdmap"]),
            )
            self.status = -1

    return LeaderProcess


@implementer(IReactorProcess)
class LeaderSpawner:
    """
    Spawns every process as the leader of a new session (and so of a new
    process group), through L{PosixSpawn}, on a POSIX reactor.

    @param reactor: A reactor whose C{spawnProcess} makes Twisted's POSIX
        C{Process} (any of Twisted's reactors on Linux).
    """

    def __init__(self, reactor: Any, posix_spawn: PosixSpawn) -> None:
        self._reactor = reactor
        self._process = _leader_process(posix_spawn)

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: bytes | str,
        args: Sequence[bytes | str],
        env: Mapping[Any, Any] | None = None,
        path: bytes | str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Mapping[int, int | str] | None = None,
    ) -> IProcessTransport:
        """
        L{IReactorProcess.spawnProcess}, with the child leading a new
        session.  C{env=None} inherits the server's environment.

        @raise ValueError: For C{uid}, C{gid} or C{usePTY}, which this
            spawner does not offer.
        @raise OSError: When the child could not be started.
        """
        if uid is not None or gid is not None or usePTY:
            raise ValueError("uid, gid and usePTY are not supported when spawning a session leader")
        process: IProcessTransport = self._process(
            self._reactor, executable, list(args), env, path, processProtocol, None, None, childFDs
        )
        self._ensure_leader(process)
        return process

    @staticmethod
    def _ensure_leader(process: IProcessTransport) -> None:
        """
        Kill a child that does not lead its own process group, so that it
        cannot outlive a stop that signals its group: that would mean the
        installed Twisted no longer makes its children through the
        C{_fork} method replaced here.  A child that has already been reaped
        cannot be checked, and needs no stop.
        """
        pid = process.pid
        if pid is None:
            return
        try:
            leader = os.getpgid(pid) == pid
        except ProcessLookupError:
            return
        if not leader:
            log.critical(
                "A child pid={pid} was not started as a process group leader: killed. This "
                "Twisted cannot spawn session leaders (docs/design-notes.md#spawn-group-leader)",
                pid=pid,
            )
            process.signalProcess("KILL")

# -*- test-case-name: tests.testing.test_fakes -*-
"""
A fake process reactor: spawns nothing, records everything, and lets a
test play the child's part (output, exit, reaction to signals) on a fake
clock.
"""

from __future__ import annotations

import signal
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.interfaces import IProcessProtocol, IProcessTransport, IReactorProcess
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer


@implementer(IProcessTransport)
class FakeProcessTransport:
    """
    The parent's end of a fake child.

    @ivar argv: The argv it was spawned with.
    @ivar env: Its environment.
    @ivar path: Its working directory.
    @ivar stdin: Everything written to its stdin.
    @ivar stdin_closed: Whether stdin was closed.
    @ivar paused: Whether the parent stopped reading its output.
    @ivar on_term: What the child does on SIGTERM: C{"exit"} (die at once),
        C{"ignore"}, or a number of seconds after which it dies.
    @ivar lingering: Whether something the child started (a grandchild)
        stays in its process group, holding its pipes, after it exits.
    @ivar straggler: Whether something the child started stays in its
        process group after it exits, without holding its pipes, until the
        group is KILLed.
    @ivar exits_with_stdin: Whether the child exits (0) once its stdin is
        closed, as the server's group reaper (L{clinvk.process.reaper})
        does; set for children spawned as one.
    """

    def __init__(
        self,
        reactor: FakeProcessReactor,
        protocol: IProcessProtocol,
        pid: int,
        argv: Sequence[str],
        env: Mapping[str, str] | None,
        path: str | None,
    ) -> None:
        self._reactor = reactor
        self.proto = protocol
        self.pid: int | None = pid
        self.argv = list(argv)
        self.env = dict(env or {})
        self.path = path
        self.stdin = b""
        self.stdin_closed = False
        self.paused = False
        self.on_term: str | float = "exit"
        self.lingering = False
        self.straggler = False
        self.exits_with_stdin = "clinvk-reaper" in self.argv
        self.exited = False
        self.ended = False
        self._status: Failure | None = None
        self._unread: list[tuple[int, bytes]] = []

    # IProcessTransport

    def closeStdin(self) -> None:
        self.stdin_closed = True
        if self.exits_with_stdin and not self.exited:
            self.exit(0)

    def closeStdout(self) -> None:
        pass

    def closeStderr(self) -> None:
        pass

    def closeChildFD(self, descriptor: int) -> None:
        if descriptor == 0:
            self.closeStdin()

    def writeToChild(self, childFD: int, data: bytes) -> None:
        if childFD == 0:
            self.write(data)

    def write(self, data: bytes) -> None:
        if self.stdin_closed:
            raise RuntimeError("write after stdin was closed")
        self.stdin += data

    def writeSequence(self, data: Iterable[bytes]) -> None:
        for chunk in data:
            self.write(chunk)

    def loseConnection(self) -> None:
        self.closeStdin()
        if self.exited and not self.ended:
            self._end()

    def signalProcess(self, signalID: str | int) -> None:
        signum = signalID if isinstance(signalID, int) else getattr(signal, f"SIG{signalID}")
        self._reactor.signal_group(self.pid or 0, signum)

    def getPeer(self) -> Any:
        return IPv4Address("TCP", "127.0.0.1", 0)

    def getHost(self) -> Any:
        return IPv4Address("TCP", "127.0.0.1", 0)

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        """Read again: deliver what the child wrote meanwhile, then its end."""
        self.paused = False
        unread, self._unread = self._unread, []
        for descriptor, data in unread:
            self.proto.childDataReceived(descriptor, data)
        if self.exited and not self.lingering:
            self._end()

    # The child's part

    def emit_stdout(self, data: bytes) -> None:
        """The child writes C{data} to stdout (read once reading is not paused)."""
        self._emit(1, data)

    def emit_stderr(self, data: bytes) -> None:
        """The child writes C{data} to stderr (read once reading is not paused)."""
        self._emit(2, data)

    def _emit(self, descriptor: int, data: bytes) -> None:
        if self.paused:
            self._unread.append((descriptor, data))
        else:
            self.proto.childDataReceived(descriptor, data)

    def exit(self, code: int = 0) -> None:
        """The child exits with C{code}; its pipes close unless it is lingering."""
        self._finish(Failure(ProcessDone(0)) if code == 0 else Failure(ProcessTerminated(exitCode=code)))

    def die(self, signum: int) -> None:
        """The child is killed by C{signum}."""
        self._finish(Failure(ProcessTerminated(signal=signum)))

    def _finish(self, status: Failure) -> None:
        if self.exited:
            return
        self.exited = True
        self._status = status
        self.proto.processExited(status)
        if not self.lingering:
            self._end()

    def _end(self) -> None:
        # Unread output keeps the pipes open: the end is seen once read.
        if self.ended or self.paused:
            return
        self.ended = True
        assert self._status is not None
        self.proto.processEnded(self._status)

    def _signalled(self, signum: int) -> bool:
        """
        React to a signal sent to the group (signal 0 only tests that it
        exists); False when the group is gone.
        """
        # The child, or a grandchild holding its pipes, or a straggler.
        alive = (not self.ended and (not self.exited or self.lingering)) or self.straggler
        if not alive:
            return False
        if signum == signal.SIGKILL:
            self.lingering = False
            self.straggler = False
            if self.exited:
                self._end()
            else:
                self.die(signal.SIGKILL)
        elif signum == signal.SIGTERM and not self.exited:
            if self.on_term == "exit":
                self.die(signal.SIGTERM)
            elif isinstance(self.on_term, (int, float)):
                self._reactor.callLater(self.on_term, self.die, signal.SIGTERM)
        return True


@implementer(IReactorProcess)
class FakeProcessReactor(MemoryReactorClock):
    """
    A L{MemoryReactorClock} that also spawns fake processes.

    @ivar spawned: Every L{FakeProcessTransport}, in spawn order.
    @ivar signals: Every C{(pgid, signal)} sent through L{signal_group}.
    @ivar spawn_error: When set, the next spawn raises it.
    @ivar exit_during_spawn: When set, the next child exits with that code
        and is reaped before C{spawnProcess} returns, as Twisted may do for
        a child that dies at once (its transport's pid is then L{None}).
    """

    def __init__(self) -> None:
        super().__init__()
        self.spawned: list[FakeProcessTransport] = []
        self.signals: list[tuple[int, int]] = []
        self.spawn_error: Exception | None = None
        self.exit_during_spawn: int | None = None
        self._next_pid = 4000

    def spawnProcess(
        self,
        processProtocol: IProcessProtocol,
        executable: bytes | str,
        args: Sequence[bytes | str] = (),
        env: Mapping[Any, Any] | None = None,
        path: bytes | str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        usePTY: bool = False,
        childFDs: Mapping[int, int | str] | None = None,
    ) -> FakeProcessTransport:
        if self.spawn_error is not None:
            error, self.spawn_error = self.spawn_error, None
            raise error
        self._next_pid += 1
        transport = FakeProcessTransport(
            self,
            processProtocol,
            self._next_pid,
            [a if isinstance(a, str) else a.decode() for a in args],
            env,
            path if path is None or isinstance(path, str) else path.decode(),
        )
        self.spawned.append(transport)
        processProtocol.makeConnection(transport)
        if self.exit_during_spawn is not None:
            code, self.exit_during_spawn = self.exit_during_spawn, None
            transport.exit(code)
            transport.pid = None
        return transport

    def signal_group(self, pgid: int, signum: int) -> bool:
        """
        The fake C{killpg}: record the signal and let the group's leader
        react to it.

        @return: False when no such group is alive.
        """
        self.signals.append((pgid, signum))
        for transport in self.spawned:
            if transport.pid == pgid:
                return transport._signalled(signum)
        return False

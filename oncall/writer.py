"""The SQLite writer process (`[database] writer = process`): the database's units of work
run in a child process.

With the default writer thread, the event loop and the database thread share one GIL, and
opening an incident spends about 40% of it in the database thread (our store code around
each statement; SQLite itself releases the GIL). With the writer in a process of its own the
two run on two cores: about 12% more new and resolved alerts per second on 2 busy cores,
for a second interpreter's memory (BENCHMARKS.md, "The writer process"). The database
thread stays: it forms each batch (a group commit, see `oncall.db`) and sends it to the
child over a socket pair, a receiving thread hands the outcomes back, so batching,
ordering and errors are as with the thread; only the place the transaction runs changes.
The child is `python -m oncall.writer`, on the same file, with the same `run_batch`.

Units of work and their arguments travel pickled: module-level functions by name, values
by value. A `Directory` (the same object in thousands of calls) travels once and is then
named by a token. Results and errors come back pickled; an error keeps its type (so
IntegrityError still means "lost a race", Conflict still means 409) and carries the
child's traceback as a note.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import threading
import traceback
from collections import OrderedDict, deque
from collections.abc import Callable
from multiprocessing.connection import Connection as Channel
from typing import Any

from sqlalchemy import exc

from oncall.directory import Directory

log = logging.getLogger(__name__)
_PROTOCOL = pickle.HIGHEST_PROTOCOL
_DIRECTORIES = 4  # directories the child keeps (one per reload; older ones are forgotten)
STOP_TIMEOUT = 30.0  # seconds the child gets to finish its batch at shutdown

Units = list[tuple[Any, tuple[Any, ...]]]
Outcomes = list[tuple[bool, Any]]


class WriterGone(exc.OperationalError):
    """The writer process exited or its socket broke: the batch's outcome is unknown.

    An OperationalError, so callers see the database as unavailable (503, retried) and the
    next batch starts a new child.
    """

    def __init__(self, reason: str) -> None:
        super().__init__("(writer process)", None, ConnectionError(reason))


class _DirectoryRef:
    """A directory the child already holds, named by its token."""

    __slots__ = ("token",)

    def __init__(self, token: int) -> None:
        self.token = token

    def __reduce__(self) -> Any:
        return (_DirectoryRef, (self.token,))


Done = Callable[["Outcomes | BaseException"], None]


def _child_env() -> dict[str, str]:
    """Return this process's environment with its module search path: the child must
    import the same `oncall` (and unpickle the same functions) even when the service was
    started from another directory (`python /opt/oncall/app.py`)."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}


class _Child:
    """One writer process, its socket, and the callbacks of the batches it has not answered
    (in the order sent: it answers in that order)."""

    def __init__(self, process: subprocess.Popen[bytes], channel: Channel) -> None:
        self.process = process
        self.channel = channel
        self.pending: deque[Done] = deque()
        self.lost = False
        self.receiver: threading.Thread | None = None


class RemoteWriter:
    """The parent's side: sends batches to the child, which runs them in order, and hands
    each batch's outcomes to its callback from a receiving thread. The child is started on
    first use and again after it is lost. `submit` is called from one thread only (the
    database thread), so batches are sent in the order they were formed.
    """

    def __init__(self, url: str, log_format: str = "text", log_level: str = "info") -> None:
        self.url = url
        self.log_settings = (log_format, log_level)
        self._lock = threading.Lock()  # guards each child's pending and lost
        self._child: _Child | None = None  # set and cleared by the sending thread only
        # id(directory) -> (token, directory): the directory is kept alive so its id is not
        # reused while the child may still hold its token. Sending thread only.
        self._tokens: OrderedDict[int, tuple[int, Directory]] = OrderedDict()
        self._next_token = 0

    def submit(self, units: Units, done: Done) -> None:
        """Send a batch; `done` is called later, from another thread, with its outcomes
        ((succeeded, result or error) per unit) or with the error that failed the whole
        batch (WriterGone when the child was lost with it). Never raises."""
        try:
            child = self._child
            if child is None or child.lost:
                child = self.start()
            payload = self._encode(units)
        except Exception as error:
            done(error)
            return
        with self._lock:
            if child.lost:  # lost since: the batch was never sent
                done(WriterGone("writer process lost before the batch was sent"))
                return
            child.pending.append(done)
        try:
            child.channel.send_bytes(payload)
        except OSError as error:
            self._lost(child, error)

    def run_batch(self, units: Units) -> Outcomes:
        """Run a batch and wait for its outcomes; raises what failed the whole batch."""
        finished = threading.Event()
        box: list[Outcomes | BaseException] = []

        def done(result: Outcomes | BaseException) -> None:
            box.append(result)
            finished.set()

        self.submit(units, done)
        finished.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]

    def start(self) -> _Child:
        """Start a child (a fresh one: it knows no directory yet) and return it."""
        parent, end = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "oncall.writer", "--fd", str(end.fileno()),
                 "--url", self.url, "--log-format", self.log_settings[0],
                 "--log-level", self.log_settings[1]],
                pass_fds=(end.fileno(),), stdin=subprocess.DEVNULL, env=_child_env())
        finally:
            end.close()
        child = _Child(process, Channel(parent.detach()))
        child.receiver = threading.Thread(target=self._receive, args=(child,),
                                          name="oncall-db-replies", daemon=True)
        self._child = child
        self._tokens.clear()
        child.receiver.start()
        log.info("database writer process started", extra={"pid": process.pid})
        return child

    def close(self) -> None:
        """Stop the child once it has answered every batch sent: it exits at the end of its
        input, then the receiving thread at the end of the child's answers."""
        child, self._child = self._child, None
        if child is None or child.lost:  # a lost child was stopped when it was lost
            return
        with socket.socket(fileno=os.dup(child.channel.fileno())) as end:
            end.shutdown(socket.SHUT_WR)
        assert child.receiver is not None
        child.receiver.join(STOP_TIMEOUT)
        try:
            child.process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            log.error("database writer process did not stop; killed")
            child.process.kill()
            child.process.wait()
        child.channel.close()

    def _receive(self, child: _Child) -> None:
        """Hand each reply to the oldest batch's callback until the child's output ends."""
        while True:
            try:
                reply = child.channel.recv_bytes()
            except (EOFError, OSError) as error:
                self._lost(child, error)
                child.channel.close()
                return
            try:
                outcome: Outcomes | BaseException = pickle.loads(reply)
            except Exception as error:  # e.g. a result whose class is missing here
                outcome = error
            with self._lock:
                done = child.pending.popleft()
            done(outcome)

    def _lost(self, child: _Child, error: BaseException) -> None:
        """Fail every batch the child has not answered and make sure it is gone (called by
        both threads; also at the child's normal end of output, with nothing pending)."""
        with self._lock:
            first = not child.lost
            child.lost = True
            pending, child.pending = list(child.pending), deque()
        if not first:
            return
        if pending or self._child is child:  # not the end of output after `close`
            log.error("database writer process lost", extra={
                "reason": f"{type(error).__name__}: {error}", "batches": len(pending)})
            child.process.kill()  # it may be alive but unreachable: never two writers
            child.process.wait()
        gone = WriterGone(f"writer process lost: {error!r}")
        for done in pending:
            done(gone)

    def _encode(self, units: Units) -> bytes:
        """Return the batch as bytes: the directories the child lacks, and the units with
        each directory argument replaced by its token. (A pickler's `persistent_id` would
        find them anywhere, but it is a Python call for every object pickled.)"""
        new: dict[int, Directory] = {}
        sent: Units = []
        for work, args in units:
            if any(type(arg) is Directory for arg in args):
                args = tuple(self._ref(arg, new) if type(arg) is Directory else arg
                             for arg in args)
            sent.append((work, args))
        forget = []
        while len(self._tokens) > _DIRECTORIES:
            _, (token, _) = self._tokens.popitem(last=False)
            forget.append(token)
        return pickle.dumps((new, forget, sent), _PROTOCOL)

    def _ref(self, directory: Directory, new: dict[int, Directory]) -> _DirectoryRef:
        known = self._tokens.get(id(directory))
        if known is None:
            token = self._next_token
            self._next_token += 1
            self._tokens[id(directory)] = (token, directory)
            new[token] = directory
            return _DirectoryRef(token)
        self._tokens.move_to_end(id(directory))
        return _DirectoryRef(known[0])


def _decode(payload: bytes, directories: dict[int, Directory]) -> Units:
    """Return the units of a batch, after taking in the directories it carries."""
    new, forget, units = pickle.loads(payload)
    directories.update(new)
    decoded: Units = []
    for work, args in units:
        if any(type(arg) is _DirectoryRef for arg in args):
            args = tuple(directories[arg.token] if type(arg) is _DirectoryRef else arg
                         for arg in args)
        decoded.append((work, args))
    for token in forget:
        directories.pop(token, None)
    return decoded


def _encode_outcomes(outcomes: Outcomes) -> bytes:
    """Return the outcomes as bytes; one that cannot be pickled becomes an error naming it."""
    for ok, value in outcomes:
        if not ok and isinstance(value, BaseException):
            value.add_note("in the database writer process:\n"
                           + "".join(traceback.format_exception(value)))
    try:
        return pickle.dumps(outcomes, _PROTOCOL)
    except Exception:  # a result or error that cannot cross: say so for that unit alone
        safe: Outcomes = []
        for outcome in outcomes:
            try:
                pickle.dumps(outcome, _PROTOCOL)
                safe.append(outcome)
            except Exception as error:
                safe.append((False, RuntimeError(
                    f"the writer's outcome {outcome[1]!r} cannot be sent back: {error}")))
        return pickle.dumps(safe, _PROTOCOL)


def _error_bytes(error: Exception) -> bytes:
    """Return the error that failed a whole batch as bytes (a RuntimeError naming it when
    it cannot be pickled)."""
    try:
        return pickle.dumps(error, _PROTOCOL)
    except Exception:
        return pickle.dumps(RuntimeError(repr(error)), _PROTOCOL)


def serve(fd: int, url: str) -> None:
    """Run batches from the socket `fd` until it closes (the parent stopped or died)."""
    import gc

    from oncall.db import BatchRunner, sqlite_engine

    channel = Channel(fd)
    runner = BatchRunner(sqlite_engine(url))
    directories: dict[int, Directory] = {}
    gc.collect()
    gc.freeze()  # as in app.py: start-up objects out of the collector's generations
    try:
        while True:
            try:
                payload = channel.recv_bytes()
            except (EOFError, OSError):
                return
            try:
                units = _decode(payload, directories)
            except Exception as error:  # the whole batch fails; the child goes on
                log.exception("database writer could not read a batch")
                channel.send_bytes(_error_bytes(RuntimeError(f"batch unreadable: {error!r}")))
                continue
            try:
                outcomes = runner.run_batch(units)
            except Exception as error:  # the commit failed: every unit with it
                channel.send_bytes(_error_bytes(error))
                continue
            channel.send_bytes(_encode_outcomes(outcomes))
    finally:
        runner.close()


def main(argv: list[str] | None = None) -> int:
    from oncall import logs

    parser = argparse.ArgumentParser(prog="python -m oncall.writer")
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--log-format", default="text")
    parser.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)
    logs.configure(args.log_format, args.log_level)
    # The parent stops the child by closing the socket, after its own last transaction;
    # a signal to the whole process group (Ctrl-C, a container stop) must not cut a
    # batch short before that.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    os.set_blocking(args.fd, True)
    serve(args.fd, args.url)
    return 0


if __name__ == "__main__":
    # Run as `oncall.writer`, not `__main__`: the classes pickled by the parent must be
    # the ones this process compares with.
    from oncall import writer

    sys.exit(writer.main())

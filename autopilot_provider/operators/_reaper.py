"""Run one command so that it dies with the task that started it.

``python -I _reaper.py PARENT_PID -- COMMAND...`` — started by the script operator in a new session
(so this process leads the process group the command and everything it starts belong to). It asks
the kernel for a signal when its parent (the task process) dies (``PR_SET_PDEATHSIG``; on systems
without it, it polls its parent id) and then kills the whole group with SIGKILL: a task killed with
``kill -9``, a Celery worker that dies or a task process the supervisor gives up on never leaves its
script running beside the retry (processes that left the group with ``setsid`` are out of reach, as
they are for every process-group reaper).

It also kills the group when the task process is *orphaned*: when its own parent, Airflow's
supervisor, dies. A Celery worker killed with ``kill -9`` takes its pool processes — the
supervisors — with it (Celery gives them ``PR_SET_PDEATHSIG``), but the task process lives in a
process group of its own and goes on, reparented, with nobody left to report its result to or to
heartbeat for it: the scheduler retries the task elsewhere while it would still be running the
script. The reaper watches the task process's parent id (``/proc``, every ``POLL_SECONDS``) and
acts when it changes.

SIGTERM (the operator's ``on_kill``, which signals the whole group) is left to the command; if the
group is still there ``GRACE_SECONDS`` later, it is killed. The exit status is the command's: its
exit code, or the same signal raised again here.

Standard library only: it runs with ``-I`` (no site, no PYTHON* variables) in the script's
restricted environment.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
GRACE_SECONDS = 10
POLL_SECONDS = 0.5


def _kill_group(*_: object) -> None:
    os.killpg(0, signal.SIGKILL)  # this process is the group's leader: it goes too


def _on_parent_death(parent: int) -> None:
    """SIGUSR1 when the parent dies (Linux), else a thread watching the parent id."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGUSR1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):

        def watch() -> None:
            while os.getppid() == parent:
                time.sleep(POLL_SECONDS)
            _kill_group()

        threading.Thread(target=watch, daemon=True).start()
    if os.getppid() != parent:  # died before the request took effect
        _kill_group()


def _parent_of(pid: int) -> int | None:
    """The parent id of ``pid`` from /proc (None when it is gone or /proc has no such file)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _on_orphaned(parent: int) -> None:
    """Kill the group when ``parent`` (the task process) gets another parent: its supervisor died."""
    supervisor = _parent_of(parent)
    if supervisor is None:  # no /proc: only the parent's own death is watched
        return

    def watch() -> None:
        while _parent_of(parent) == supervisor:
            time.sleep(POLL_SECONDS)
        _kill_group()

    threading.Thread(target=watch, daemon=True).start()


def _on_terminate(*_: object) -> None:
    signal.signal(signal.SIGALRM, _kill_group)
    signal.alarm(GRACE_SECONDS)


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: _reaper.py PARENT_PID -- COMMAND...", file=sys.stderr)
        return 2
    parent, command = int(argv[1]), argv[3:]
    if os.getpgid(0) != os.getpid():
        os.setpgid(0, 0)
    pid = os.fork()
    if pid == 0:  # the command: default signal handling, this process group
        try:
            os.execvp(command[0], command)
        except OSError as exc:
            print(f"cannot run {command[0]}: {exc.strerror}", file=sys.stderr)
        os._exit(127)
    signal.signal(signal.SIGUSR1, _kill_group)
    signal.signal(signal.SIGTERM, _on_terminate)
    _on_parent_death(parent)
    _on_orphaned(parent)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except ChildProcessError:
            return 1
        except InterruptedError:  # pragma: no cover - PEP 475 retries waitpid itself
            continue
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
    return os.waitstatus_to_exitcode(status)


if __name__ == "__main__":
    sys.exit(main(sys.argv))

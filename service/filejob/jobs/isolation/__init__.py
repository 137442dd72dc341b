"""Running a processor in a process of its own that can be stopped for real.

Threads cannot be killed; processes can. A processor that declares `isolation = "process"` runs
in a worker: a process forked from a preloaded forkserver (safe: the server is
single-threaded), kept in a pool (`WorkerPool`, pool.py) and reused from job to job, so that a
small job costs a message each way instead of a fresh interpreter. For each job the worker
(child.py) reads the stored input by path, writes the result to a named temp file while hashing
it, and reports over its pipe: progress, then its outcome (protocol.py). There are at most as
many idle workers as jobs run at once in the process; they start when first needed, and the
pool's owner (the executor, or `filejob worker`) ends them when it shuts down.

Who stops a worker. Only its parent, the server (or worker): on cancel, timeout or shutdown it
SIGKILLs the worker's process group at once, discards the partial output itself, and the next
job gets a new worker; a stopped worker is never reused. SIGTERM would buy nothing: Python's
default action for it is to die on the spot, with no cleanup, and a processor has nothing to
save. A stop signal meant for the server must not reach the workers on its way, wherever it
comes from: Ctrl+C (SIGINT to the terminal's foreground group), `kill -TERM -<pgid>`, an init
that forwards to the group, and systemd's default KillMode=control-group, which sends SIGTERM
to every process of the unit one by one. A process group of their own therefore cannot be all
of it, and the forkserver must be shielded too: the workers are its children, and die with it
(PR_SET_PDEATHSIG).

So SIGINT and SIGTERM are *blocked* in the thread that starts the forkserver: a signal mask
survives fork() and exec(). CPython 3.11 keeps it all the way: `forkserver.ensure_running()`
starts the server with `util.spawnv_passfds()`, whose `_posixsubprocess.fork_exec()` restores
the caller's mask in the new process (after blocking everything around its vfork); the
forkserver's `main()` sets handlers (SIGCHLD, SIGINT ignored) but never the mask; each worker
is an `os.fork()` of it, and `_serve_one()` resets handlers only. A blocked signal stays
pending, harmlessly, and SIGKILL cannot be blocked, so the parent's stop and PDEATHSIG work as
before. One trap: `resource_tracker.ensure_running()`, which `forkserver.ensure_running()`
calls first, *unblocks* SIGINT and SIGTERM in the calling thread when it starts the tracker,
undoing our mask; so the tracker is started before the mask is set (it shields itself: it
ignores both). A worker blocks them again before each job, whatever the last processor did.

Each worker also starts a session of its own (setsid): no terminal's job control reaches it,
and the parent's SIGKILL to its process group takes whatever the processor itself started
along. Processes a processor starts inherit the mask, so they too ignore the server's stop
signals; a processor that stops one of them uses SIGKILL (`Popen.kill()`), not `terminate()`.
What a job leaves behind must not outlive it, though its worker lives on: the worker is a
child subreaper (PR_SET_CHILD_SUBREAPER), so every orphan among its descendants becomes its
child, and every member of its group is such a descendant (only the session's own processes can
join a group of it). After each job it reaps its ended children; if any child is left, or a
thread besides its own, it says so, and the server retires it with the same SIGKILL to its
process group. Without /proc or the subreaper, every worker is retired after its job.

A worker is also retired, though fit, after FILEJOB_ISOLATION_MAX_JOBS jobs, or once its RSS
has grown FILEJOB_ISOLATION_MAX_RSS_GROWTH bytes over its warm size (its size at start, plus
what the first job of each processor added: loading a processor's code is not growth): what
a leaking processor or library holds goes with it, instead of creeping up until the container
is restarted.

A worker that dies without reporting while nobody asked it to stop (the OOM killer, a segfault
in a C extension, its process group killed from outside) raises `ChildDied`: the runner
counts it as an interrupted attempt and retries it, as it would after the server's own crash.
One found dead while it waited for a job is replaced before the job is given to it.
"""

from __future__ import annotations

from filejob.jobs.isolation.pool import STOP_GRACE, Recycling, WorkerPool
from filejob.jobs.isolation.protocol import ChildDied

__all__ = ["STOP_GRACE", "ChildDied", "Recycling", "WorkerPool"]

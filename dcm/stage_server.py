"""A warm stage server for many small jobs on one machine: one process imports the stage libraries once and forks
a child per `python -m dcm` command that names it (environment DCM_STAGE_SERVER=SOCKET), instead of each job
paying ~5-10 s of torch, diffusers, peft and MLflow imports in a fresh interpreter.

    python -m dcm.stage_server results/stage.sock -- snakemake --cores 2   # served while the command runs
    python -m dcm.stage_server results/stage.sock &                          # or until stopped (SIGTERM)
    DCM_STAGE_SERVER=results/stage.sock snakemake --cores 2

The child runs `dcm.cli.main` with the command's arguments, working directory, environment and standard
streams (passed over the socket), so it behaves as the command would; the command forwards SIGTERM, SIGINT,
SIGHUP and SIGUSR1 to it and exits with its status. The server serves the code it imported when it started:
restart it after changing the package. Never for jobs on other machines (SLURM): each node pays its own imports.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import traceback
from pathlib import Path

ENV = "DCM_STAGE_SERVER"
HEADER = 8  # bytes of the request's length, sent with the three standard streams
FORWARDED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1)  # SIGUSR1: SLURM's pre-emption
PACKAGE = str(Path(__file__).resolve().parent)


def relay(path: str, argv: list[str]) -> int:
    """The command's side: hand argv, cwd, environment and stdin/stdout/stderr to the server's child; its status."""
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(path)
    except OSError as err:
        print(f"error: {ENV}={path}: no stage server answers there ({err.strerror}); start one with "
              f"`python -m dcm.stage_server {path}` or unset {ENV}", file=sys.stderr)
        return 2
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "package": PACKAGE}).encode()
    socket.send_fds(client, [len(request).to_bytes(HEADER, "big")], [0, 1, 2])
    client.sendall(request)
    replies = client.makefile("r")
    child = int(replies.readline())
    previous = {signum: signal.signal(signum, lambda received, _frame: os.kill(child, received))
                for signum in FORWARDED}
    try:
        status = replies.readline()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return int(status) if status else 1  # no status: the child was killed before it could report


def _serve_one(connection: socket.socket) -> int:
    """The child's side: become the command (streams, directory, environment, argv), run it, report its status."""
    header, fds, _, _ = socket.recv_fds(connection, HEADER, 3)
    length = int.from_bytes(header, "big")
    request = bytearray()
    while len(request) < length:
        request += connection.recv(length - len(request))
    request = json.loads(request)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    sys.stdout.reconfigure(line_buffering=os.isatty(1))  # buffered as a fresh interpreter's, on the command's fd
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    sys.argv = [sys.argv[0], *request["argv"]]
    random.seed()  # a fresh interpreter's entropy, not the server's state
    connection.sendall(f"{os.getpid()}\n".encode())
    threading.Thread(target=_stop_when_gone, args=(connection,), daemon=True).start()
    if request["package"] != PACKAGE:
        print(f"error: the stage server at {os.environ.get(ENV)} runs dcm from {PACKAGE}, this command's dcm is "
              f"{request['package']}: start a server from this checkout", file=sys.stderr)
        status = 2
    else:
        from dcm.cli import main

        try:
            status = main(request["argv"])
        except SystemExit as done:  # argparse: --help (0) and usage errors (2); a message exits 1, as Python does
            if isinstance(done.code, str):
                print(done.code, file=sys.stderr)
            status = done.code if isinstance(done.code, int) else (0 if done.code is None else 1)
        except BaseException:  # as an uncaught exception in a fresh interpreter: its traceback, status 1
            traceback.print_exc()
            status = 1
    atexit._run_exitfuncs()  # what the interpreter runs at exit (MLflow ends its runs, logging flushes)
    sys.stdout.flush()
    sys.stderr.flush()
    connection.sendall(f"{status}\n".encode())
    return status


def _stop_when_gone(connection: socket.socket) -> None:
    """SIGTERM this child once its command is gone (killed, even by SIGKILL): no work outlives the job it was for."""
    if not connection.recv(1):
        os.kill(os.getpid(), signal.SIGTERM)


def preload() -> None:
    """Import what the stages import: the command line, every stage module and the libraries behind them."""
    from dcm import cli

    for module in {target.partition(":")[0] for _, target in cli.STAGES.values()}:
        importlib.import_module(module)
    if threading.active_count() > 1:  # forking copies only this thread: a library thread would be lost mid-work
        raise RuntimeError(f"an import started {threading.active_count() - 1} thread(s); the server cannot fork")


def serve(path: str) -> None:
    """Listen on the socket `path` and fork one child per command until SIGTERM or SIGINT."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        if os.path.lexists(path):
            if not stat.S_ISSOCK(os.lstat(path).st_mode):
                raise SystemExit(f"error: cannot listen on {path}: it exists and is not a socket")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                if probe.connect_ex(path) == 0:
                    raise SystemExit(f"error: cannot listen on {path}: a stage server already listens there")
            os.unlink(path)  # a stopped server's
        listener.bind(path)
    except OSError as err:  # e.g. a path longer than the 107 bytes a Unix socket allows
        raise SystemExit(f"error: cannot listen on {path}: {err.strerror or err}") from None
    try:
        listener.listen(64)
        preload()  # after the bind, which fails fast; commands that connect meanwhile wait in the backlog
        signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
        print(f"stage server ready on {path} (pid {os.getpid()})", flush=True)
        while True:
            connection, _ = listener.accept()
            if os.fork() == 0:
                listener.close()
                for signum in (signal.SIGCHLD, signal.SIGTERM, signal.SIGHUP):  # a fresh interpreter's handlers
                    signal.signal(signum, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                status = 1
                try:
                    status = _serve_one(connection)
                finally:
                    os._exit(status)
            connection.close()
    except KeyboardInterrupt:
        pass
    finally:
        listener.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def unserved(env: dict | None = None) -> dict:
    """`env` (default: this process's environment) without the variable that sends commands to a server."""
    return {key: value for key, value in (os.environ if env is None else env).items() if key != ENV}


@contextlib.contextmanager
def running(path: Path, timeout: float = 120.0, cwd: Path | None = None):
    """A stage server on `path` for the duration of the block (tests, benchmarks); yields the environment that
    sends `python -m dcm` commands to it. `cwd`: the checkout whose package it serves (default: this one)."""
    path = Path(path).absolute()  # the server runs in the checkout's directory
    server = subprocess.Popen([sys.executable, "-m", "dcm.stage_server", str(path)], stdout=subprocess.PIPE,
                              text=True, cwd=cwd or Path(PACKAGE).parent, env=unserved())
    try:
        ready = server.stdout.readline()
        if not ready.startswith("stage server ready"):
            raise RuntimeError(f"the stage server did not start (status {server.wait(timeout)})")
        yield {**os.environ, ENV: str(path)}
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dcm.stage_server", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("socket", type=Path, help="path of the Unix socket to listen on (removed at exit)")
    parser.add_argument("command", nargs=argparse.REMAINDER,
                        help="-- COMMAND ...: serve while COMMAND runs with DCM_STAGE_SERVER set, exit with its status")
    args = parser.parse_args(argv)
    if not args.command:
        serve(str(args.socket))
        return 0
    command = args.command[1:] if args.command[0] == "--" else args.command
    with running(args.socket) as env:
        child = subprocess.Popen(command, env=env)
        signal.signal(signal.SIGTERM, lambda received, _frame: child.send_signal(received))
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:  # Ctrl-C reached the command too (one process group): wait for it to stop
                continue


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops the server as Ctrl-C does
    sys.exit(main())

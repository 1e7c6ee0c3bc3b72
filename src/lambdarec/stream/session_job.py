"""Keep the speed layer running on a Flink session cluster: submit it with ``flink run``, watch it, cancel it.

``flink run -d`` returns as soon as the cluster has the job, so the job itself is no local process
the supervisor could watch or stop. This small process stands for it under the supervisor
(:class:`lambdarec.stream.service.SessionStreamJobService`):

* at start it adopts the job it submitted before if the cluster still runs it (this process was
  killed, the job was not), else submits the packaged job, from the newest retained checkpoint
  when there is one (``flink run -s <chk>``), and records the job id;
* while it runs it follows the job's state; a job that ends on its own (FAILED: its restart
  strategy gave up) ends this process too, so ``status`` shows it stopped;
* on SIGTERM (``lambdarec stream stop``) it cancels the job; its checkpoints are retained on
  cancellation, so the next start resumes from them.

Usage (built by the service)::

    python -m lambdarec.stream.session_job --rest 127.0.0.1:8081 --job-dir <unpacked archive> \\
        --python jobs/flink/.venv/bin/python --parallelism 2 --job-file <state>/job.json \\
        --checkpoint-dir <state>/checkpoints -- --bootstrap ... --state-dir <state> ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ACTIVE_STATES = ("CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING")
SUBMIT_TIMEOUT_S = 600.0
_SUBMITTED = re.compile(r"Job has been submitted with JobID ([0-9a-f]{32})")


def read_job_file(path: Path) -> dict[str, Any]:
    """The recorded job (``jid``, ``restored_from``, ``submitted_at``), or ``{}``."""
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def job_state(rest: str, jid: str) -> str | None:
    """The job's state on the cluster, or None when the cluster does not know it."""
    from lambdarec.runtime.flink_cluster import rest_json

    try:
        return str(rest_json(rest, f"/jobs/{jid}").get("state"))
    except OSError:
        return None


def submit(args: argparse.Namespace, job_args: Sequence[str]) -> dict[str, Any]:
    """Run ``flink run -d`` for the packaged job; returns the record of the submitted job.

    Raises:
        RuntimeError: ``flink run`` failed or printed no job id (its output is in this process's log).
    """
    from lambdarec.runtime.flink_cluster import flink_run_command
    from lambdarec.stream.service import latest_checkpoint

    restore = latest_checkpoint(Path(args.checkpoint_dir))
    command = flink_run_command(
        args.rest, Path(args.job_dir), job_args, parallelism=args.parallelism, python=Path(args.python),
        restore_from=restore,
    )  # fmt: skip
    print(f"restoring from {restore}" if restore else "restoring from nothing (the topic from its earliest offset)")
    print(f"submitting: {' '.join(command)}", flush=True)
    env = {**os.environ, "JVM_ARGS": f"-Xmx{args.client_heap}", "FLINK_CONF_DIR": args.client_conf}
    env["FLINK_LOG_DIR"] = str(Path(args.job_file).parent)
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=SUBMIT_TIMEOUT_S, check=False)
    sys.stdout.write(done.stdout[-20_000:])
    sys.stdout.write(done.stderr[-20_000:])
    found = _SUBMITTED.search(done.stdout + done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"flink run failed (exit {done.returncode}); its output is above")
    return {"jid": found.group(1), "restored_from": str(restore) if restore else None, "submitted_at": time.time()}


def cancel(rest: str, jid: str, timeout_s: float) -> str | None:
    """Cancel the job (checkpoints retained) and wait until the cluster says it is no longer active."""
    from lambdarec.runtime.flink_cluster import rest_json

    try:
        rest_json(rest, f"/jobs/{jid}?mode=cancel", method="PATCH")
    except OSError as err:
        print(f"cancel of {jid} failed: {err}", flush=True)
    deadline = time.monotonic() + timeout_s
    state = job_state(rest, jid)
    while state in (*ACTIVE_STATES, "CANCELLING", "FAILING") and time.monotonic() < deadline:
        time.sleep(0.5)
        state = job_state(rest, jid)
    return state


def main(argv: Sequence[str] | None = None) -> int:
    """Submit or adopt the job, follow it, cancel it on SIGTERM; the exit status says how it ended."""
    argv = list(sys.argv[1:] if argv is None else argv)
    job_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rest", required=True, help="The JobManager's REST host:port.")
    parser.add_argument("--job-dir", required=True, help="The unpacked lambdarec-flink-job.zip.")
    parser.add_argument("--python", required=True, help="Interpreter of the Python driver and workers.")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--job-file", required=True, help="Where the submitted job's id is recorded.")
    parser.add_argument("--checkpoint-dir", required=True, help="The job's retained checkpoints.")
    parser.add_argument("--client-conf", required=True, help="FLINK_CONF_DIR of the flink run client.")
    parser.add_argument("--client-heap", default="512m")
    parser.add_argument("--cancel-timeout-s", type=float, default=60.0)
    parser.add_argument("--poll-s", type=float, default=2.0)
    args = parser.parse_args(own)

    from lambdarec.runtime.flink_cluster import check_flink_rest

    check_flink_rest(args.rest)
    job_file = Path(args.job_file)
    stopping = False

    def on_term(_signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)

    record = read_job_file(job_file)
    if record.get("jid") and job_state(args.rest, record["jid"]) in ACTIVE_STATES:
        print(f"adopting job {record['jid']}, still running on {args.rest}", flush=True)
    else:
        record = submit(args, job_args)
        print(f"job {record['jid']} submitted to {args.rest}", flush=True)
    # The keeper's pid beside the job id: the service is healthy only once this process holds the job.
    record["keeper_pid"] = os.getpid()
    tmp = job_file.with_suffix(".tmp")
    tmp.write_text(json.dumps(record))
    tmp.replace(job_file)
    jid = record["jid"]
    last = None
    while not stopping:
        state = job_state(args.rest, jid)
        if state != last:
            print(f"job {jid}: {state}", flush=True)
            last = state
        if state in ("FAILED", "CANCELED", "FINISHED"):
            return 1
        time.sleep(args.poll_s)
    final = cancel(args.rest, jid, args.cancel_timeout_s)
    print(f"job {jid}: {final} (cancelled; checkpoints retained)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

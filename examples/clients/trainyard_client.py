#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A Trainyard client in plain Python: the wire protocol without trainctl.

What a third-party client needs, and nothing else (docs/cluster-protocol.md
has the rules): one TCP connection to traind; every frame is a 4-byte
big-endian length and a protobuf `tyrpc.Envelope` (lib/rpc/envelope.proto)
whose `payload` is the method's own message (proto/trainyard.proto); under
MUNGE (traind's default) every request carries a credential whose payload is
SHA-256("TYA1" || method || NUL || payload), made here by the `munge`
command. Answers are one RESPONSE, or STREAM frames closed by END; a
non-zero status comes with a message naming what is wrong.

The Python modules for the two .proto files are generated with protoc into
a temporary directory at start (Debian: protobuf-compiler, python3-protobuf).

    trainyard_client.py [--controller HOST:PORT | --socket PATH]
                        [--auth munge|none] [--munge-socket PATH] COMMAND ...
      submit [--name N] [--nodes N] [--ntasks-per-node N] [--wait] -- CMD ARGS...
      wait ID          follow job ID (WatchJob) until it ends; exit with its code
      ls [--limit N]   every job (the newest N): id, state, name, reason
      nodes            every node: name, state, reason
      history [--page N] [--before END_MS:ID]
                       ended jobs, newest end first, N per GetHistory
                       request, each page after the last one's cursor

--socket PATH speaks the same frames on traind's Unix socket (traind's
--socket, by default STATE_DIR/traind.sock): no credential is sent there,
the kernel tells traind who is calling.

Exit codes: the job's (submit --wait, wait), 1 when the controller refused
a request (its message on stderr) or no MUNGE credential could be made
(munged not running: the message suggests --auth none or --socket PATH),
2 for a usage error.
"""
import argparse
import hashlib
import importlib
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# NODE_FAIL and PREEMPTED are final only for a job submitted with no_requeue
# (a requeued job is PENDING again by the time anyone can see it).
FINAL = {"JOB_COMPLETED", "JOB_FAILED", "JOB_CANCELLED", "JOB_TIMEOUT", "JOB_OUT_OF_MEMORY",
         "JOB_NODE_FAIL", "JOB_PREEMPTED"}


def load_protos():
    """(envelope_pb2, trainyard_pb2), generated from the checkout's .proto files
    into a temporary directory, removed once they are imported."""
    try:
        importlib.import_module("google.protobuf")
    except ImportError:
        sys.exit("trainyard_client: this python3 has no protobuf module "
                 "(Debian: apt install python3-protobuf, then run it with /usr/bin/python3)")
    out = tempfile.mkdtemp(prefix="trainyard-pb-")
    try:
        subprocess.run(["protoc", f"-I{ROOT}/proto", f"-I{ROOT}/lib/rpc", f"--python_out={out}",
                        f"{ROOT}/proto/trainyard.proto", f"{ROOT}/lib/rpc/envelope.proto"],
                       check=True)
        sys.path.insert(0, out)
        mods = importlib.import_module("envelope_pb2"), importlib.import_module("trainyard_pb2")
        sys.path.remove(out)
        return mods
    finally:
        shutil.rmtree(out, ignore_errors=True)


env_pb, ty_pb = load_protos()


class RequestError(Exception):
    """The controller answered with a non-zero status."""

    def __init__(self, method, status, message):
        super().__init__(f"{method}: {message} (status {status})")
        self.status = status


class Client:
    """One connection to traind; requests are sent one at a time."""

    def __init__(self, controller, auth="munge", munge_socket=None, unix_socket=None):
        if unix_socket:
            # traind ignores an `auth` credential on its local socket.
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(60)
            self.sock.connect(unix_socket)
            auth = "none"
        else:
            host, _, port = controller.rpartition(":")
            self.sock = socket.create_connection((host.strip("[]"), int(port)), timeout=60)
        self.auth, self.munge_socket, self.next_id = auth, munge_socket, 1

    def close(self):
        self.sock.close()

    def _credential(self, method, payload):
        if self.auth == "none":
            return b""
        digest = hashlib.sha256(b"TYA1" + method.encode() + b"\0" + payload).digest()
        cmd = ["munge"] + (["--socket", self.munge_socket] if self.munge_socket else [])
        try:
            done = subprocess.run(cmd, input=digest, capture_output=True, check=False)
        except OSError as e:
            raise RuntimeError(f"munge: cannot run it: {e.strerror}") from e
        if done.returncode != 0:
            raise RuntimeError(done.stderr.decode().strip() or f"munge: exit {done.returncode}")
        return done.stdout.strip()

    def _send(self, env):
        body = env.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(body)) + body)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("the controller closed the connection")
            buf += chunk
        return buf

    def _recv(self):
        (n,) = struct.unpack(">I", self._recv_exact(4))
        env = env_pb.Envelope()
        env.ParseFromString(self._recv_exact(n))
        return env

    def _request(self, method, msg):
        payload = msg.SerializeToString()
        rid, self.next_id = self.next_id, self.next_id + 1
        self._send(env_pb.Envelope(version=1, request_id=rid, kind=env_pb.REQUEST, method=method,
                                   payload=payload, auth=self._credential(method, payload)))
        return rid

    def call(self, method, msg, answer_type):
        """One request, one RESPONSE: the decoded answer, or RequestError."""
        rid = self._request(method, msg)
        env = self._recv()
        # Answers are matched by request id: a frame of another request
        # (a stream this client stopped reading) is not this one's answer.
        while env.request_id != rid:
            env = self._recv()
        if env.kind != env_pb.RESPONSE:
            raise ConnectionError(f"{method}: unexpected frame kind {env.kind}")
        if env.status != 0:
            raise RequestError(method, env.status, env.message)
        answer = answer_type()
        answer.ParseFromString(env.payload)
        return answer

    def stream(self, method, msg, item_type):
        """One request, STREAM items until END: yields each decoded item."""
        rid = self._request(method, msg)
        while True:
            env = self._recv()
            if env.request_id != rid:
                continue
            if env.kind == env_pb.END or env.kind == env_pb.RESPONSE:
                if env.status != 0:
                    raise RequestError(method, env.status, env.message)
                return
            item = item_type()
            item.ParseFromString(env.payload)
            yield item


def submit(client, args):
    job = ty_pb.Job(name=args.name or os.path.basename(args.cmd[0]),
                    resources=ty_pb.Resources(nodes=args.nodes,
                                              tasks_per_node=args.ntasks_per_node),
                    command=ty_pb.CommandSpec(argv=args.cmd, cwd=os.getcwd(),
                                              env=[f"PATH={os.environ.get('PATH', '')}"]))
    # The same request id on a retry would return this job instead of a second one.
    answer = client.call("SubmitJob", ty_pb.SubmitJobRequest(job=job,
                                                             request_id=secrets.token_hex(16)),
                         ty_pb.SubmitJobResponse)
    print(f"job {answer.job_id}", flush=True)
    return wait(client, answer.job_id) if args.wait else 0


def wait(client, job_id):
    """Follows the job's state as the controller pushes it; its exit code."""
    final = None
    # The stream ends (END 0) right after the final event: reading on to
    # END leaves the connection clean for the next request.
    for event in client.stream("WatchJob", ty_pb.WatchJobRequest(job_id=job_id),
                               ty_pb.JobWatchEvent):
        if ty_pb.JobState.Name(event.job.state) in FINAL:
            final = event.job
    if final is None:
        raise ConnectionError(f"WatchJob {job_id}: the stream ended before the job did")
    state = ty_pb.JobState.Name(final.state)
    # The job's reason, from GetJob on the same connection.
    job = client.call("GetJob", ty_pb.GetJobRequest(job_id=job_id), ty_pb.GetJobResponse).job
    print(f"job {job_id} {state[4:]} exit {final.exit_code} signal {final.term_signal}"
          f" ({job.reason})", flush=True)
    # As sbatch --wait (and trainctl submit --wait): the exit code of a job
    # that exited with one, else 1 (a signal, OUT_OF_MEMORY's 0:125,
    # cancelled, timed out).
    if state == "JOB_COMPLETED":
        return 0
    if final.term_signal:
        return 1
    return final.exit_code or 1


def ls(client, args):
    answer = client.call("ListJobs", ty_pb.ListJobsRequest(limit=args.limit),
                         ty_pb.ListJobsResponse)
    for j in answer.jobs:
        print(f"{j.id}\t{ty_pb.JobState.Name(j.state)[4:]}\t{j.spec.name}\t{j.reason}")
    return 0


def history(client, args):
    """Every ended job, a page of args.page at a time: each request's
    cursor is the previous page's last record (its end_ms and id)."""
    end, _, job = (args.before or "9223372036854775807:0").partition(":")
    cursor, pages = (int(end), int(job or 0)), 0
    while True:
        answer = client.call("GetHistory",
                             ty_pb.GetHistoryRequest(limit=args.page, before_end_ms=cursor[0],
                                                     before_id=cursor[1]),
                             ty_pb.GetHistoryResponse)
        pages += 1
        for j in answer.jobs:
            print(f"{j.id}\t{ty_pb.JobState.Name(j.state)[4:]}\t{j.name}\t{j.end_ms}")
        if not answer.truncated or not answer.jobs:
            print(f"{pages} pages", flush=True)
            return 0
        cursor = (answer.jobs[-1].end_ms, answer.jobs[-1].id)


def nodes(client):
    answer = client.call("ListNodes", ty_pb.ListNodesRequest(), ty_pb.ListNodesResponse)
    for n in answer.nodes:
        print(f"{n.name}\t{ty_pb.NodeState.Name(n.state)[5:]}\t{n.reason}")
    return 0


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--controller", default=os.environ.get("TRAINYARD_CONTROLLER",
                                                          "127.0.0.1:7810"))
    p.add_argument("--socket", help="traind's Unix socket instead of TCP")
    p.add_argument("--auth", choices=["munge", "none"], default="munge")
    p.add_argument("--munge-socket", default=os.environ.get("TRAINYARD_MUNGE_SOCKET"))
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("submit")
    s.add_argument("--name")
    s.add_argument("--nodes", type=int, default=1)
    s.add_argument("--ntasks-per-node", type=int, default=1)
    s.add_argument("--wait", action="store_true")
    s.add_argument("cmd", nargs="+")
    w = sub.add_parser("wait")
    w.add_argument("id", type=int)
    sub.add_parser("ls").add_argument("--limit", type=int, default=0)
    sub.add_parser("nodes")
    h = sub.add_parser("history")
    h.add_argument("--page", type=int, default=100)
    h.add_argument("--before")
    return p.parse_args(argv)


def main(argv):
    args = parse(argv)
    client = Client(args.controller, args.auth, args.munge_socket, args.socket)
    try:
        if args.command == "submit":
            return submit(client, args)
        if args.command == "wait":
            return wait(client, args.id)
        if args.command == "nodes":
            return nodes(client)
        if args.command == "history":
            return history(client, args)
        return ls(client, args)
    except RequestError as e:
        print(f"trainyard_client: {e}", file=sys.stderr)
        return 1
    except RuntimeError as e:  # no MUNGE credential: munged or munge missing
        print(f"trainyard_client: {e}; without MUNGE: --auth none (a controller run "
              "with --auth none) or --socket PATH (on the controller's host)",
              file=sys.stderr)
        return 1
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

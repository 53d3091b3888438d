#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A careless client against traind: what buggy clients send, each answered
as docs/cluster-protocol.md ("What a client that gets it wrong is
answered") says, and none of it disturbing the next client.

    client_careless.py --controller HOST:PORT [--auth munge|none] [--munge-socket PATH]

It uses examples/clients/trainyard_client.py for the protobuf classes and
the credential, and writes its own frames. Prints one line per check and
exits 1 at the first that does not hold.
"""
import argparse
import os
import socket
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "examples", "clients"))
import trainyard_client as tc  # noqa: E402

E, T = tc.env_pb, tc.ty_pb
# lib/base/base.h's codes, as the protocol page lists them.
EINVAL, EPROTO, EVERSION, ENOTFOUND = -10001, -10003, -10005, -10006


def check(what, ok, detail=""):
    print(f"{'ok' if ok else 'FAILED'}: {what}{': ' + str(detail) if detail else ''}", flush=True)
    if not ok:
        sys.exit(1)


class Raw:
    """One connection on which this script writes whatever bytes it likes."""

    def __init__(self, args):
        self.c = tc.Client(args.controller, args.auth, args.munge_socket)
        self.c.sock.settimeout(10)

    def request(self, method, msg, rid, version=1):
        payload = msg.SerializeToString()
        return E.Envelope(version=version, request_id=rid, kind=E.REQUEST, method=method,
                          payload=payload, auth=self.c._credential(method, payload))

    def send(self, *envs):
        data = b""
        for env in envs:
            body = env.SerializeToString()
            data += struct.pack(">I", len(body)) + body
        self.c.sock.sendall(data)

    def answers(self, n):
        return [self.c._recv() for _ in range(n)]

    def closed_without_answer(self):
        """True when the peer closes the connection and sent nothing first."""
        try:
            return self.c.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def answered(args, label):
    """A fresh connection is served: the misbehaviour disturbed no one."""
    nodes = tc.Client(args.controller, args.auth, args.munge_socket)
    n = len(nodes.call("ListNodes", T.ListNodesRequest(), T.ListNodesResponse).nodes)
    nodes.close()
    check(f"{label}: the next client is served", n > 0)


def request_errors(args):
    r = Raw(args)
    r.send(r.request("NoSuchMethod", T.ListJobsRequest(), 1))
    (a,) = r.answers(1)
    check("an unknown method is TY_ENOTFOUND naming it",
          a.status == ENOTFOUND and a.message == 'unknown method "NoSuchMethod"', a.message)
    r.send(r.request("GetJob", T.SubmitJobRequest(job=T.Job(name="x" * 40)), 2))
    (a,) = r.answers(1)
    check("a payload of the wrong type is TY_EPROTO naming the type",
          a.status == EPROTO and a.message == "payload is not a GetJobRequest", a.message)
    r.send(r.request("ListNodes", T.ListNodesRequest(), 3, version=2))
    (a,) = r.answers(1)
    check("another protocol version is TY_EVERSION", a.status == EVERSION, a.message)
    # Stray answer frames and a CANCEL of nothing are ignored; pipelined
    # requests are each answered once, matched by request id.
    r.send(E.Envelope(version=1, request_id=40, kind=E.RESPONSE, status=0),
           E.Envelope(version=1, request_id=41, kind=E.CANCEL),
           r.request("ListNodes", T.ListNodesRequest(), 10),
           r.request("GetJob", T.GetJobRequest(job_id=424242), 11),
           r.request("ListJobs", T.ListJobsRequest(limit=1), 12))
    got = {a.request_id: a for a in r.answers(3)}
    check("three pipelined requests get one answer each", sorted(got) == [10, 11, 12],
          sorted(got))
    check("each answer is its own request's", got[10].status == 0 and got[12].status == 0 and
          got[11].status == ENOTFOUND, got[11].message)
    # A request id still open (a running job's WatchJob) used again; then
    # the stream is cancelled, and the client walks away.
    job = T.Job(name="careless", command=T.CommandSpec(argv=["sleep", "30"], cwd="/"))
    r.send(r.request("SubmitJob", T.SubmitJobRequest(job=job), 19))
    (a,) = r.answers(1)
    check("a job to watch", a.status == 0, a.message)
    sub = T.SubmitJobResponse()
    sub.ParseFromString(a.payload)
    r.send(r.request("WatchJob", T.WatchJobRequest(job_id=sub.job_id), 20))
    (a,) = r.answers(1)
    check("WatchJob streams", a.kind == E.STREAM and a.request_id == 20)
    r.send(r.request("ListNodes", T.ListNodesRequest(), 20))
    a = r.answers(1)[0]
    while a.kind == E.STREAM:
        a = r.answers(1)[0]
    check("a request id still open is TY_EINVAL naming it",
          a.request_id == 20 and a.status == EINVAL and
          a.message == "request_id 20 is already in use", a.message)
    r.send(E.Envelope(version=1, request_id=20, kind=E.CANCEL),
           r.request("CancelJob", T.CancelJobRequest(job_ids=[sub.job_id]), 21))
    a = r.answers(1)[0]
    while a.request_id != 21:
        a = r.answers(1)[0]
    check("the watched job is cancelled", a.kind == E.RESPONSE and a.status == 0, a.message)
    r.c.close()
    answered(args, "a client that left mid-stream")


def frame_errors(args):
    ok = Raw(args).request("ListNodes", T.ListNodesRequest(), 1).SerializeToString()
    bad = {
        "a zero length": struct.pack(">I", 0),
        "a length above --max-frame": struct.pack(">I", 0xFFFFFFF0),
        "a length short of the envelope": struct.pack(">I", len(ok) - 3) + ok,
        "bytes that are no envelope": struct.pack(">I", 5) + b"\xff" * 5,
        "a request without a method": None,
        "a frame of kind 0": None,
    }
    for label, data in bad.items():
        r = Raw(args)
        if data is None:
            kind = E.REQUEST if "method" in label else E.KIND_UNSPECIFIED
            body = E.Envelope(version=1, request_id=1, kind=kind,
                              method="" if kind == E.REQUEST else "ListNodes").SerializeToString()
            data = struct.pack(">I", len(body)) + body
        r.c.sock.sendall(data)
        check(f"{label} closes the connection without an answer", r.closed_without_answer())
        r.c.close()
    r = Raw(args)
    r.c.sock.sendall(struct.pack(">I", len(ok)) + ok[:5])
    r.c.sock.shutdown(socket.SHUT_WR)
    check("a truncated frame then EOF is closed without an answer", r.closed_without_answer())
    r.c.close()
    answered(args, "bad frames")


def main(argv):
    p = argparse.ArgumentParser()
    p.add_argument("--controller", required=True)
    p.add_argument("--auth", choices=["munge", "none"], default="munge")
    p.add_argument("--munge-socket", default=os.environ.get("TRAINYARD_MUNGE_SOCKET"))
    args = p.parse_args(argv)
    request_errors(args)
    frame_errors(args)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

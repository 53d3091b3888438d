#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The installed package at work, run by deb_install.sh as root inside a
throwaway root (an overlay of this machine in private mount, network and
PID namespaces), so nothing here touches the real system.

Installs the .deb with dpkg (its maintainer scripts create the trainyard
user and the state directories), checks the layout and the units
(systemd-analyze verify against the real binaries), starts a private
munged, then starts each unit's ExecStart the way systemd would: the
unit's User=, StateDirectory=, RuntimeDirectory=, EnvironmentFile= and UMask=, with
NOTIFY_SOCKET pointing at a socket here that must receive READY=1 from the
daemon's own pid (NotifyAccess=main). A user submits a job with the
installed trainctl; it must run as that user (trainyard-exec from
/usr/libexec) and its output must come back. traind --backup copies the
live store; SIGTERM must bring STOPPING=1 and a clean exit.

With a GRAPH_DIR (deb_install.sh's copy of the example MLP), a graph job
runs too: the model check, trainrun and a checkpoint, all as installed.

Usage: deb_inside.py PACKAGE.deb [GRAPH_DIR]
"""
import os
import pwd
import shlex
import signal
import socket
import struct
import subprocess
import sys
import time

NODE = "tydeb-node"
USER = "tydeb"
UNITS = "/lib/systemd/system"


def fail(msg):
    print("FAIL: " + msg, flush=True)
    sys.exit(1)


def run(argv, check=True, **kw):
    p = subprocess.run(argv, capture_output=True, text=True, **kw)
    if check and p.returncode != 0:
        fail("%s exited %d:\n%s%s" % (" ".join(argv), p.returncode, p.stdout, p.stderr))
    return p


def install(deb):
    out = run(["dpkg", "-i", deb], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    print(out.stdout.strip().splitlines()[-1], flush=True)
    try:
        pw = pwd.getpwnam("trainyard")
    except KeyError:
        fail("the package did not create the trainyard user")
    if pw.pw_uid >= 1000:
        fail("trainyard is not a system user (uid %d)" % pw.pw_uid)
    st = os.stat("/var/lib/trainyard/checkpoints")
    if st.st_mode & 0o7777 != 0o711 or st.st_uid != 0:
        fail("/var/lib/trainyard/checkpoints is %o (uid %d), not 711 and root's"
             % (st.st_mode & 0o7777, st.st_uid))
    for path in ["/usr/sbin/traind", "/usr/sbin/trainworkerd", "/usr/bin/trainctl",
                 "/usr/bin/rlaunch", "/usr/bin/trainrun",
                 "/usr/libexec/trainyard/trainyard-exec",
                 "/usr/libexec/trainyard/trainyard-graphcheck",
                 "/usr/libexec/trainyard/trainyard-plan",
                 "/usr/libexec/trainyard/trainyard-stream",
                 "/etc/trainyard/traind.conf", "/etc/trainyard/traind.env",
                 "/etc/trainyard/trainworkerd.env", "/usr/share/doc/trainyard/deploy.md",
                 # what the units, env files and deploy.md send an operator to
                 "/usr/share/doc/trainyard/README.md", "/usr/share/doc/trainyard/metrics.md",
                 "/usr/share/doc/trainyard/web-console.md",
                 "/usr/share/doc/trainyard/cluster-protocol.md",
                 # what those name in turn (tests/lint/package_docs.sh)
                 "/usr/share/doc/trainyard/slurm.md", "/usr/share/doc/trainyard/training.md",
                 "/usr/share/doc/trainyard/planner.md",
                 "/usr/share/doc/trainyard/architecture.md",
                 "/usr/share/doc/trainyard/examples/prometheus.yml",
                 "/usr/share/doc/trainyard/examples/alerts.yml"]:
        if not os.path.exists(path) and not os.path.exists(path + ".gz"):
            fail("the package has no " + path)
    # The units' Documentation=file:// and the man pages name it uncompressed.
    if not os.path.exists("/usr/share/doc/trainyard/deploy.md"):
        fail("/usr/share/doc/trainyard/deploy.md, which the units name, is not installed as is")
    for page in ["traind.8", "trainworkerd.8", "trainctl.1", "rlaunch.1", "trainrun.1"]:
        sect = page[-1]
        path = "/usr/share/man/man%s/%s.gz" % (sect, page)
        if not os.path.exists(path):
            fail("no man page " + path)
    conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "trainyard"]).stdout
    for f in ["traind.conf", "traind.env", "trainworkerd.env"]:
        if "/etc/trainyard/" + f not in conffiles:
            fail("/etc/trainyard/%s is not a conffile:\n%s" % (f, conffiles))
    units = [UNITS + "/traind.service", UNITS + "/trainworkerd.service"]
    v = run(["systemd-analyze", "verify", "--man=no"] + units, check=False)
    if v.returncode != 0 or v.stdout.strip() or v.stderr.strip():
        fail("systemd-analyze verify of the installed units:\n" + v.stdout + v.stderr)


def configure():
    """What an operator does after installing (docs/deploy.md)."""
    with open("/etc/trainyard/traind.conf", "a") as f:
        f.write("auth.nodes = %s\n" % NODE)
    with open("/etc/trainyard/trainworkerd.env") as f:
        env = f.read()
    env = env.replace('TRAINWORKERD_OPTS="', 'TRAINWORKERD_OPTS="--name %s ' % NODE)
    with open("/etc/trainyard/trainworkerd.env", "w") as f:
        f.write(env)
    os.makedirs("/etc/munge", exist_ok=True)
    run(["mungekey", "--create", "--force", "--keyfile", "/etc/munge/munge.key"])
    os.makedirs("/run/munge", exist_ok=True)
    subprocess.Popen(["/usr/sbin/munged", "-f", "--key-file", "/etc/munge/munge.key",
                      "--socket", "/run/munge/munge.socket.2", "--pid-file", "/run/munge/munged.pid",
                      "--seed-file", "/run/munge/seed", "--log-file", "/run/munge/munged.log"])
    for _ in range(100):
        if run(["munge", "-n"], check=False).returncode == 0:
            return
        time.sleep(0.1)
    fail("munged did not start")


def unit_keys(name):
    """The [Service] keys of an installed unit: name -> list of values."""
    keys, section = {}, None
    with open("%s/%s" % (UNITS, name)) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]" and "=" in line:
                k, v = line.split("=", 1)
                keys.setdefault(k, []).append(v)
    return keys


def env_file(path):
    """systemd's EnvironmentFile: KEY=VALUE lines, shell-style quotes."""
    env = {}
    if not os.path.exists(path):
        return env
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;" or "=" not in line:
                continue
            k, v = line.split("=", 1)
            env[k.strip()] = " ".join(shlex.split(v)) if v else ""
    return env


def exec_argv(line, env):
    """ExecStart's words with $VAR split on whitespace, ${VAR} as one word."""
    argv = []
    for word in shlex.split(line):
        if word.startswith("${") and word.endswith("}"):
            argv.append(env.get(word[2:-1], ""))
        elif word.startswith("$"):
            argv.extend(env.get(word[1:], "").split())
        else:
            argv.append(word)
    return argv


def sandbox(k, user):
    """The part of the unit's hardening that can be had without systemd,
    as a command prefix that keeps the pid (each step execs the next):
    ProtectSystem=strict and ProtectHome=read-only as a read-only mount of
    everything but the state and runtime directories and ReadWritePaths= (in a mount
    namespace of the daemon's own), NoNewPrivileges=, the capability
    bounding set (CapabilityBoundingSet=, and the capabilities that
    ProtectKernelModules=, ProtectKernelLogs= and ProtectClock= take away),
    then User=. Whatever breaks the daemon or its tasks under these breaks
    this test."""
    one = lambda key: k.get(key, [""])[-1]
    mounts = []
    if one("ProtectSystem") == "strict":
        writable = ["/var/lib/" + d for d in one("StateDirectory").split()]
        writable += ["/run/" + d for d in one("RuntimeDirectory").split()]
        for p in " ".join(k.get("ReadWritePaths", [])).split():
            p = p.lstrip("-")
            if os.path.exists(p):
                writable.append(p)
        mounts = ["mount --bind %s %s" % (w, w) for w in writable]
        mounts += ["mount -o remount,bind,ro %s" % m for m in ["/", "/run", "/tmp"]]
        mounts += ["mount -o remount,bind,rw %s" % w for w in writable]
    drop = []
    if "CapabilityBoundingSet" in k and not one("CapabilityBoundingSet"):
        drop = ["-all"]
    else:
        for key, caps in [("ProtectKernelModules", "-sys_module"), ("ProtectKernelLogs", "-syslog"),
                          ("ProtectClock", "-sys_time,-wake_alarm")]:
            if one(key) == "yes":
                drop.append(caps)
    setpriv = ["setpriv"]
    if one("NoNewPrivileges") == "yes":
        setpriv.append("--no-new-privs")
    if drop:
        setpriv.append("--bounding-set=" + ",".join(drop))
    if user != "root":
        setpriv += ["--reuid", user, "--regid", user, "--init-groups"]
    prefix = setpriv + ["--"]
    if mounts:
        script = " && ".join(mounts) + ' && exec "$@"'
        prefix = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh"] + prefix
    return prefix


class Unit:
    """One unit's main process, started as systemd would start it."""

    def __init__(self, name):
        self.name = name
        k = unit_keys(name)
        if k.get("Type") != ["notify"]:
            fail(name + " is not Type=notify")
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8"}
        for ef in k.get("EnvironmentFile", []):
            env.update(env_file(ef.lstrip("-")))
        user = k.get("User", ["root"])[0]
        pw = pwd.getpwnam(user)
        for d in k.get("StateDirectory", [""])[0].split():
            path = "/var/lib/" + d
            os.makedirs(path, exist_ok=True)
            os.chmod(path, int(k.get("StateDirectoryMode", ["0755"])[0], 8))
            os.chown(path, pw.pw_uid, pw.pw_gid)
        for d in k.get("RuntimeDirectory", [""])[0].split():  # made fresh at each start
            path = "/run/" + d
            os.makedirs(path, exist_ok=True)
            os.chmod(path, int(k.get("RuntimeDirectoryMode", ["0755"])[0], 8))
            os.chown(path, pw.pw_uid, pw.pw_gid)
        self.sock_path = "/run/notify-%s" % name
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if os.path.exists(self.sock_path):  # a unit started again
            os.unlink(self.sock_path)
        self.sock.bind(self.sock_path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        os.chmod(self.sock_path, 0o777)  # the daemon may not be root
        env["NOTIFY_SOCKET"] = self.sock_path
        argv = sandbox(k, user) + exec_argv(k["ExecStart"][0], env)
        umask = int(k.get("UMask", ["0022"])[0], 8)

        def become():
            os.setsid()
            os.umask(umask)

        self.log = open("/run/%s.log" % name, "w")
        print("%s: %s (as %s)" % (name, " ".join(argv), user), flush=True)
        self.proc = subprocess.Popen(argv, env=env, preexec_fn=become, stdout=self.log,
                                     stderr=subprocess.STDOUT, cwd="/")

    def expect(self, state, timeout_s=60):
        """Waits for STATE=1 in a notification from the daemon's own pid."""
        self.sock.settimeout(1)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None and state == "READY":
                self.dump()
                fail("%s exited %d before READY=1" % (self.name, self.proc.returncode))
            try:
                msg, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
            except socket.timeout:
                continue
            pid = None
            for level, typ, data in anc:
                if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("iII", data[:12])[0]
            lines = msg.decode().split("\n")
            if state + "=1" in lines:
                if pid != self.proc.pid:
                    fail("%s=1 of %s came from pid %s, not the main pid %d" %
                         (state, self.name, pid, self.proc.pid))
                print("%s: %s=1 (%s)" % (self.name, state,
                                        ", ".join(l for l in lines if l.startswith("STATUS="))),
                      flush=True)
                return
        self.dump()
        fail("%s sent no %s=1 within %d s" % (self.name, state, timeout_s))

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.expect("STOPPING", 30)
        rc = self.proc.wait(60)
        if rc != 0:
            self.dump()
            fail("%s exited %d after SIGTERM" % (self.name, rc))

    def dump(self):
        self.log.flush()
        with open(self.log.name) as f:
            print("---- %s output\n%s" % (self.name, f.read()[-4000:]), flush=True)


def as_user(argv):
    pw = pwd.getpwnam(USER)

    def become():
        os.initgroups(USER, pw.pw_gid)
        os.setgid(pw.pw_gid)
        os.setuid(pw.pw_uid)

    return run(argv, preexec_fn=become, cwd=pw.pw_dir,
               env={"PATH": "/usr/bin:/bin", "HOME": pw.pw_dir, "USER": USER})


def wait_job(jid, timeout_s):
    """Polls `trainctl show` until the job completed; fails on another end."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        show = as_user(["trainctl", "show", jid]).stdout
        if "COMPLETED" in show:
            return show
        if "FAILED" in show or "CANCELLED" in show:
            logs = as_user(["trainctl", "logs", jid]).stdout
            fail("job %s ended badly:\n%s\n%s" % (jid, show, logs[-3000:]))
        time.sleep(0.3)
    fail("job %s did not complete:\n%s" % (jid, show))


def run_job():
    run(["useradd", "--create-home", USER])
    job = as_user(["trainctl", "submit", "--quiet", "--command", "--name", "from-deb", "--",
                   "/bin/sh", "-c", "echo hello from $(id -un) on $TRAINYARD_NODE"])
    jid = job.stdout.strip()
    wait_job(jid, 60)
    logs = as_user(["trainctl", "logs", jid]).stdout
    want = "hello from %s on %s" % (USER, NODE)
    if want not in logs:
        fail("job %s's output is %r, not %r" % (jid, logs, want))
    print("job %s: %s" % (jid, logs.strip()), flush=True)


def graph_job(graph):
    """The example MLP for a few steps: traind's check runs
    /usr/libexec/trainyard/trainyard-graphcheck inside traind's sandbox,
    the worker starts /usr/bin/trainrun as the user, and the rank writes
    its checkpoint under /var/lib/trainyard/checkpoints."""
    home = pwd.getpwnam(USER).pw_dir
    as_user(["cp", graph + "/mlp.onnx", graph + "/mlp.config.pb", home])
    as_user(["sh", "-c", "%s/deploy/graph-job.sh mlp.onnx mlp.config.pb 1 1 deb-mlp data > job.pb"
             % graph])
    jid = as_user(["trainctl", "submit", "--quiet", "job.pb"]).stdout.strip()
    show = wait_job(jid, 180)
    ckpt = "/var/lib/trainyard/checkpoints/" + jid
    if not os.path.isdir(ckpt) or os.stat(ckpt).st_uid != pwd.getpwnam(USER).pw_uid:
        fail("graph job %s has no checkpoint directory %s of its user:\n%s" % (jid, ckpt, show))
    print("graph job %s: COMPLETED, checkpoints %s" % (jid, sorted(os.listdir(ckpt))), flush=True)


def backup():
    dest = "/var/lib/trainyard/traind/backup.db"
    out = run(["runuser", "-u", "trainyard", "--", "traind", "--state-dir",
               "/var/lib/trainyard/traind", "--backup", dest])
    print(out.stdout.strip(), flush=True)
    if os.stat(dest).st_mode & 0o777 != 0o600:
        fail("the backup is not 0600")


def upgrade(deb):
    """The package installed again over itself (what an upgrade runs: prerm
    upgrade, unpack, postinst configure) keeps the operator's edits to the
    conffiles and the controller's state: a restarted traind still knows
    the jobs (docs/deploy.md, "Upgrade")."""
    run(["dpkg", "-i", deb], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    with open("/etc/trainyard/traind.conf") as f:
        if "auth.nodes = %s" % NODE not in f.read():
            fail("the upgrade lost the operator's line in /etc/trainyard/traind.conf")
    traind = Unit("traind.service")
    traind.expect("READY")
    show = as_user(["trainctl", "show", "1"]).stdout
    if "COMPLETED" not in show:
        traind.dump()
        fail("after the upgrade traind does not know job 1 as COMPLETED:\n" + show)
    traind.stop()
    print("upgrade: conffiles and state kept", flush=True)


def main():
    install(sys.argv[1])
    configure()
    traind = Unit("traind.service")
    traind.expect("READY")
    worker = Unit("trainworkerd.service")
    worker.expect("READY")
    try:
        run_job()
        if len(sys.argv) > 2:
            graph_job(sys.argv[2])
        backup()
    except SystemExit:
        traind.dump()
        worker.dump()
        raise
    worker.stop()
    traind.stop()
    upgrade(sys.argv[1])
    print("ok: installed, started as the units say, ran jobs, stopped, upgraded in place",
          flush=True)


if __name__ == "__main__":
    main()

"""A compromised host, for the hostile-host tests: it runs the real sshmr agent behind a proxy
that lies to the master.

A test host's ``python`` is a wrapper that runs ``hostile_agent.py ATTACK STATE_DIR ARGS``.
Any command but the agent runs as it is (preflight, the lock check of resume). The agent
(``-u …/sshmr_agent.py CONFIG``) runs as a child: what the master sends reaches it unchanged
(the proxy notes the attempts it was given and its result key), and every line the agent
sends back goes through ``ATTACK``, which may rewrite it, add lines, or send what no agent
would. What it did is logged to ``STATE_DIR/attack.log``; once one of its slots is up it
creates ``STATE_DIR/gate``, which the tests' gated jobs wait for. Standard library only.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import pickle
import subprocess
import sys
import threading
import time

ESCAPES = ("\x1b]0;pwned\x07\x1b[2J\x1b[31m[bold red]FAKE[/bold red] <script>alert(1)</script>"
           " \u202egnp.exe \x9b31m")


class Canary:
    """Pickles as ``os.system("touch CANARY")``: run on load, if the master let it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


class Proxy:
    def __init__(self, attack: str, state: str, child: subprocess.Popen) -> None:
        self.attack, self.state, self.child = attack, state, child
        self.key: bytes | None = None
        self.given: set[int] = set()
        self.out = os.fdopen(1, "wb", buffering=0)
        self.lock = threading.Lock()
        self.done_once = False

    def log(self, text: str) -> None:
        with open(os.path.join(self.state, "attack.log"), "a") as f:
            f.write(f"{time.time():.3f} {os.getpid()} {text}\n")

    def send(self, data: bytes) -> None:
        with self.lock:
            self.out.write(data)

    def send_msg(self, msg: dict) -> None:
        self.send((json.dumps(msg) + "\n").encode())

    # ------------------------------------------------------------ master -> agent

    def from_master(self) -> None:
        stdin = os.fdopen(0, "rb", buffering=0)
        buf = b""
        while True:
            chunk = stdin.read(65536)
            if not chunk:
                break
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("t") == "key":
                    self.key = bytes.fromhex(msg["k"])
                elif msg.get("t") == "run":
                    self.given.add(msg["a"])
            try:
                self.child.stdin.write(chunk)
                self.child.stdin.flush()
            except OSError:
                break
        try:
            self.child.stdin.close()
        except OSError:
            pass

    # ------------------------------------------------------------ agent -> master

    def run(self) -> None:
        threading.Thread(target=self.from_master, daemon=True).start()
        first = True
        for line in self.child.stdout:
            msg = json.loads(line)
            if first:
                first = False
                self.on_ready(msg)
                continue
            getattr(self, "attack_" + self.attack)(msg)
            if msg.get("t") == "up":  # a slot is up here: the honest hosts' jobs may go on
                open(os.path.join(self.state, "gate"), "a").close()

    def on_ready(self, msg: dict) -> None:
        if self.attack == "escape":
            msg["python"] = "3.11 " + ESCAPES
        self.send_msg(msg)
        self.log(f"ready sent ({self.attack})")
        if self.attack == "bigline":
            self.log("sending a 64 MiB line")
            block = b"x" * (1 << 20)
            try:
                for _ in range(64):
                    self.send(block)
            except OSError:
                self.log("the master closed the channel")
        elif self.attack == "flood":
            self.log("flooding heartbeats")
            hb = b'{"t":"hb"}\n' * 10000
            try:
                for _ in range(200):  # 2,000,000 messages, 22 MB
                    self.send(hb)
            except OSError:
                self.log("the master closed the channel")
            self.log("flood sent")
        elif self.attack == "drip":
            self.log("dripping a message that never ends")
            began = time.monotonic()
            try:
                while True:
                    self.send(b"{")
                    time.sleep(0.3)
                    if time.monotonic() - began > 5:  # long past host_silence: the honest
                        open(os.path.join(self.state, "gate"), "a").close()  # jobs go on
            except OSError:
                self.log("the master closed the channel")

    def attack_honest(self, msg: dict) -> None:
        self.send_msg(msg)

    attack_bigline = attack_flood = attack_honest

    def attack_drip(self, msg: dict) -> None:
        pass  # nothing but the drip

    def attack_silent(self, msg: dict) -> None:
        if msg.get("t") == "ack":
            self.done_once = True  # from now on: acknowledgements and heartbeats only
        elif self.done_once and msg.get("t") != "hb":
            self.log(f"swallowed {msg.get('t')} {msg.get('a', msg.get('slot'))}")
            return
        self.send_msg(msg)

    def attack_foreign(self, msg: dict) -> None:
        self.send_msg(msg)
        if msg.get("t") == "done" and not self.done_once:
            # Only an id below one it was given: ids are handed out in dispatch order and a
            # host's run messages (inline payloads here) reach it in that order, so such an
            # id went to another host. A higher one may be this host's own next attempt,
            # dispatched but not yet sent, which it may report (and lie about) like any other.
            others = [a for a in range(max(self.given, default=0), 0, -1) if a not in self.given]
            for other in others[:1]:
                self.done_once = True
                data = b'"forged"'
                self.log(f"claiming attempt {other} (given: {sorted(self.given)})")
                self.send_msg({"t": "done", "a": other, "status": "ok", "kind": "json",
                               "sha": hashlib.sha256(data).hexdigest(), "size": len(data),
                               "r": data.decode(), "dur": 0.1})
                return

    def attack_escape(self, msg: dict) -> None:
        if msg.get("t") == "done":
            msg = {"t": "done", "a": msg["a"], "status": "error", "exit": 1,
                   "error": "RuntimeError: " + ESCAPES, "tb": "Traceback\n" + ESCAPES,
                   "out": ESCAPES, "err": ESCAPES, "dur": 0.01}
            self.log(f"escape sequences in the outcome of attempt {msg['a']}")
        self.send_msg(msg)

    def attack_pickle(self, msg: dict) -> None:
        if msg.get("t") == "done" and msg.get("status") == "ok" and self.key:
            canary = os.path.join(self.state, "pwned")
            data = pickle.dumps([Canary(canary)], protocol=4)
            sig = hmac.new(self.key, b"sshmr-result:%d:" % msg["a"], hashlib.sha256)
            sig.update(data)
            for key in ("r", "rb"):
                msg.pop(key, None)
            msg.update(kind="pickle", sha=hashlib.sha256(data).hexdigest(), size=len(data),
                       sig=sig.hexdigest(), rb=base64.b64encode(data).decode())
            self.log(f"a signed hostile pickle for attempt {msg['a']}")
        self.send_msg(msg)

    def attack_huge(self, msg: dict) -> None:
        if msg.get("t") == "done" and msg.get("status") == "ok":
            for key in ("r", "rb"):
                msg.pop(key, None)
            msg.update(size=10 << 30)  # 10 GiB, says the host
            self.log(f"claims a 10 GiB result for attempt {msg['a']}")
        self.send_msg(msg)

    def attack_liar(self, msg: dict) -> None:
        if msg.get("t") == "done" and msg.get("status") == "ok":
            run_dir = json.loads(sys.argv[-1])["run_dir"]
            path = os.path.join(run_dir, "a", str(msg["a"]), "result")
            with open(path, "wb") as f:  # 200 MiB on the host, sparse
                f.truncate(200 << 20)
            for key in ("r", "rb"):
                msg.pop(key, None)
            msg.update(size=1000, kind="bytes")
            self.log(f"a 200 MiB result said to be 1000 bytes for attempt {msg['a']}")
        self.send_msg(msg)

    def attack_types(self, msg: dict) -> None:
        if msg.get("t") == "done":
            self.log("a done message with a path for an attempt id")
            self.send_msg({"t": "done", "a": "../../../../tmp/sshmr-pwned", "status": "ok",
                           "kind": "json", "sha": "0" * 64, "size": 2, "r": "{}",
                           "exit": {"code": 1}, "error": "\ud800"})
            return
        self.send_msg(msg)


def main() -> None:
    attack, state, *args = sys.argv[1:]
    if len(args) < 3 or args[0] != "-u" or not args[1].endswith("sshmr_agent.py"):
        os.execv(sys.executable, [sys.executable, *args])
    child = subprocess.Popen([sys.executable, *args], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE)
    try:
        Proxy(attack, state, child).run()
    finally:
        child.kill()
        child.wait()


if __name__ == "__main__":
    main()

"""A small Maelstrom node library for shakedown's demo nodes (our own code).

A node reads JSON messages from stdin, one per line, and writes messages to
stdout. Handlers run on the reading thread; `every` runs a function on a
timer thread; `rpc` calls a handler with the reply (or drops it silently
when none comes). Every message is logged to stderr, as nodes in the wild do.
"""

import json
import sys
import threading
import time


class Node:
    def __init__(self):
        self.id = None
        self.ids = []
        self.handlers = {}
        self.callbacks = {}
        self.next_id = 0
        self.lock = threading.RLock()
        self.out = threading.Lock()

    def on(self, kind, fn):
        self.handlers[kind] = fn

    def send(self, dest, body):
        msg = json.dumps({"src": self.id, "dest": dest, "body": body})
        with self.out:
            sys.stderr.write("sent " + msg + "\n")
            sys.stdout.write(msg + "\n")
            sys.stdout.flush()

    def forward(self, dest, msg):
        """Sends a message on as it came, under its sender's id."""
        line = json.dumps({"src": msg["src"], "dest": dest, "body": msg["body"]})
        with self.out:
            sys.stderr.write("forwarded " + line + "\n")
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def reply(self, req, body):
        body = dict(body)
        body["in_reply_to"] = req["body"]["msg_id"]
        self.send(req["src"], body)

    def error(self, req, code, text):
        self.reply(req, {"type": "error", "code": code, "text": text})

    def rpc(self, dest, body, callback):
        with self.lock:
            self.next_id += 1
            body = dict(body)
            body["msg_id"] = self.next_id
            self.callbacks[self.next_id] = callback
        self.send(dest, body)

    def every(self, seconds, fn):
        def loop():
            while True:
                time.sleep(seconds)
                with self.lock:
                    fn()

        threading.Thread(target=loop, daemon=True).start()

    def run(self):
        for line in sys.stdin:
            if not line.strip():
                continue
            sys.stderr.write("received " + line)
            msg = json.loads(line)
            body = msg["body"]
            with self.lock:
                if "in_reply_to" in body:
                    cb = self.callbacks.pop(body["in_reply_to"], None)
                    if cb:
                        cb(msg)
                    continue
                if body["type"] == "init":
                    self.id = body["node_id"]
                    self.ids = body["node_ids"]
                    self.reply(msg, {"type": "init_ok"})
                    continue
                fn = self.handlers.get(body["type"])
                if fn is None:
                    self.error(msg, 10, "unsupported: " + body["type"])
                else:
                    fn(msg)

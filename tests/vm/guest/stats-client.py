#!/usr/bin/env python3
# A scx_stats client that is not scx_llmos: it sends one JSON request line on
# the stats socket, as scxtop or any script would, and prints the fields asked
# for, space-separated, from the JSON answer.
#   usage: stats-client.py TARGET [KEY=VALUE...] -- FIELD...
#     TARGET  top or threads; KEY=VALUE are request arguments (threads: pid=N)
#     FIELD   a path into the answer: names and list indexes joined by dots
#             (level_runs.3), and LIST[KEY=VALUE] for the element of a list
#             of objects that has that value (threads[tid=42].cpu)
# A field the answer does not have is an error: exit status 1, and why on stderr.
# STATS_SOCKET overrides the socket (default /var/run/scx/root/stats).
import json
import os
import re
import socket
import sys


def request(target, args):
    path = os.environ.get("STATS_SOCKET", "/var/run/scx/root/stats")
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(path)
        line = {"req": "stats", "args": {"target": target, **args}}
        sock.sendall(json.dumps(line).encode() + b"\n")
        answer = b""
        while not answer.endswith(b"\n"):
            chunk = sock.recv(1 << 16)
            if not chunk:
                break
            answer += chunk
    reply = json.loads(answer)
    if reply["errno"] != 0:
        sys.exit(f"stats-client: {target}: errno {reply['errno']}: {reply['args'].get('resp')}")
    return reply["args"]["resp"]


def field(value, path):
    for part in path.split("."):
        select = re.fullmatch(r"(\w+)\[(\w+)=([^\]]*)\]", part)
        if select:
            name, key, want = select.groups()
            matches = [e for e in value[name] if str(e.get(key)) == want]
            if not matches:
                sys.exit(f"stats-client: no element {key}={want} in {name}")
            value = matches[0]
        elif isinstance(value, list):
            value = value[int(part)]
        elif part in value:
            value = value[part]
        else:
            sys.exit(f"stats-client: no field {part} in {path}")
    return value


def main():
    argv = sys.argv[1:]
    if "--" not in argv or not argv[0] or argv[0] == "--":
        sys.exit("usage: stats-client.py TARGET [KEY=VALUE...] -- FIELD...")
    split = argv.index("--")
    target, args = argv[0], dict(a.split("=", 1) for a in argv[1:split])
    answer = request(target, args)
    print(" ".join(str(field(answer, path)) for path in argv[split + 1 :]))


main()

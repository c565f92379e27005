"""The functions rapid runs, by exact symbol, in the order it first runs them.

Called by bench/link-order.sh (make link-order); see there.
"""

import argparse
import bisect
import http.client
import os
import re
import signal
import socket
import subprocess
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connect(port, deadline):
    """A connection to 127.0.0.1:port once it is served (valgrind is slow to start)."""
    while True:
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.connect()
            return c
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def post(c, path, body):
    c.request("POST", path, body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    return r.status


def run(cmd, out, drive):
    """Run `cmd` under callgrind while `drive()` exercises it; the dump."""
    vg = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--compress-strings=no",
          "--dump-instr=yes", "--compress-pos=no"]
    p = subprocess.Popen(vg + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        drive()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    return out


def lambda_mode(a):
    port = free_port()
    cmd = [a.rapid, "--runtime-interface-emulator-address", f"127.0.0.1:{port}", a.function]

    def drive():
        path = "/2015-03-31/functions/function/invocations"
        c = connect(port, time.monotonic() + 60)
        for _ in range(100):
            assert post(c, path, b'{"hello":"world"}') == 200
        for _ in range(10):
            c2 = connect(port, time.monotonic() + 10)
            post(c2, path, b"{}")
            c2.close()
        c.close()

    return run(cmd, os.path.join(a.work, "lambda.cg"), drive)


def http_mode(a):
    port, up = free_port(), free_port()
    cmd = [a.rapid, "--watchdog-address", f"127.0.0.1:{port}", "--mode", "http",
           "--upstream-url", f"http://127.0.0.1:{up}", "--suppress-lock",
           a.bench, "floor-server", f"127.0.0.1:{up}"]

    def drive():
        deadline = time.monotonic() + 60
        while True:
            c = connect(port, deadline)
            if post(c, "/", b'{"hello":"world"}') == 200:
                break
            c.close()
            time.sleep(0.2)
        for _ in range(100):
            post(c, "/", b'{"hello":"world"}')
        c.close()

    return run(cmd, os.path.join(a.work, "http.cg"), drive)


SECTION = re.compile(r"^\s*([0-9a-f]+)\s+[0-9a-f]+\s+([0-9a-f]+)\s+\d+\s+.*:\(\.text\.(\S+)\)$")


# Sections LLVM names by how hot it thinks a function is: `.text.unlikely.SYM`.
PREFIXES = ("unlikely.", "hot.", "startup.", "exit.", "split.")


def symbol(section):
    """The function a `.text.` section holds."""
    for p in PREFIXES:
        if section.startswith(p):
            return section[len(p):]
    return section


def read_map(path):
    """Every function section of the map: (start, end, symbol), by address."""
    secs = []
    with open(path, errors="replace") as f:
        for line in f:
            m = SECTION.match(line)
            if m:
                start, size = int(m.group(1), 16), int(m.group(2), 16)
                if size:
                    secs.append((start, start + size, symbol(m.group(3))))
    secs.sort()
    return secs


def ran(dump, binary):
    """Addresses of `binary`'s instructions that ran, in dump order (callgrind
    gives each executed instruction's address in the ELF file's layout, as
    the map does; functions entered by a jump count too)."""
    real = os.path.realpath(binary)
    ours, out = False, []
    for line in open(dump, errors="replace"):
        if line.startswith("ob="):
            ours = os.path.realpath(line[3:].strip()) == real
        elif ours and line.startswith("0x"):
            out.append(int(line.split(None, 1)[0], 16))
    return out


def main():
    ap = argparse.ArgumentParser()
    for k in ("rapid", "function", "bench", "map", "work", "out"):
        ap.add_argument("--" + k, required=True)
    a = ap.parse_args()
    secs = read_map(a.map)
    starts = [s for s, _, _ in secs]
    if not secs:
        raise SystemExit(f"link-order: no function sections in {a.map}")
    names, seen, unnamed = [], set(), 0
    for scenario in (lambda_mode, http_mode):
        dump = scenario(a)
        for addr in ran(dump, a.rapid):
            i = bisect.bisect_right(starts, addr) - 1
            if i < 0 or addr >= secs[i][1]:
                unnamed += 1
                continue
            sym = secs[i][2]
            if sym not in seen:
                seen.add(sym)
                names.append(sym)
        print(f"link-order: {scenario.__name__}: {len(names)} functions so far")
    size = sum(e - s for s, e, n in secs if n in seen)
    with open(a.out, "w") as f:
        f.write("\n".join(names) + "\n")
    print(f"link-order: {len(names)} functions ({size // 1024} KiB of "
          f"{sum(e - s for s, e, _ in secs) // 1024} KiB) -> {a.out}; {unnamed} addresses outside them")


if __name__ == "__main__":
    main()

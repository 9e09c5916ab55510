#!/usr/bin/env python3
"""Records the TCP segments of one port seen on one interface (AF_PACKET,
IPv4), one JSON line each: ports, sequence number, payload length, the
option kinds, and hoptrace's context option (tcp_ctx_option.h) decoded when
present. Prints "ready" once listening; on SIGTERM writes {"drops": N}
(packets the kernel dropped for want of buffer) and stops. For tests: run
it inside the test's own network namespace."""
import argparse
import json
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003


def options(raw):
    """(kind, bytes) of each option in a TCP header's option area."""
    out, i = [], 0
    while i < len(raw):
        kind = raw[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(raw) or raw[i + 1] < 2:
            break
        n = raw[i + 1]
        out.append((kind, raw[i:i + n]))
        i += n
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--iface", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # Room for a burst of 64 KiB GSO packets (a 1 MiB response): the default
    # buffer holds three, and a dropped packet would be a false "no option".
    s.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 64 << 20)
    s.bind((a.iface, 0))
    out = open(a.out, "w", buffering=1)

    def stop(*_):
        # struct tpacket_stats {packets, drops} (SOL_PACKET 263, PACKET_STATISTICS 6)
        packets, drops = struct.unpack("II", s.getsockopt(263, 6, 8))
        out.write(json.dumps({"drops": drops}) + "\n")
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while True:
        frame, addr = s.recvfrom(70000)
        if len(frame) < 14 + 20 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0xF) * 4
        if ip[9] != 6:
            continue
        total = struct.unpack("!H", ip[2:4])[0]
        tcp = ip[ihl:total]
        sport, dport, seq = struct.unpack("!HHI", tcp[:8])
        if a.port not in (sport, dport):
            continue
        doff = (tcp[12] >> 4) * 4
        opts = options(tcp[20:doff])
        rec = {"sport": sport, "dport": dport, "seq": seq, "len": len(tcp) - doff,
               "first": tcp[doff:doff + 1].hex(), "kinds": [k for k, _ in opts],
               "outgoing": addr[2] == socket.PACKET_OUTGOING, "ctx": None}
        for kind, body in opts:
            if kind == 253 and len(body) >= 4 and body[2:4] in (b"HT", b"HU"):
                rec["ctx"] = {"len": body[1], "sampled": body[2:4] == b"HT",
                              "trace_id": body[4:20].hex(), "parent_id": body[20:28].hex()}
        out.write(json.dumps(rec) + "\n")


if __name__ == "__main__":
    main()

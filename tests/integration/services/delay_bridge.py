#!/usr/bin/env python3
"""A two-port Ethernet bridge in user space that delays and drops frames.

For hoptrace's network tests: the kernels we target have no netem and no
tc gact, so a slow or lossy link is made here. It forwards whole frames
(AF_PACKET), so the TCP connection, its 4-tuple and the IP TTL stay those of
the two ends, as on a real link.

  delay_bridge.py --left IF --right IF [--delay-lr-ms 20] [--delay-rl-ms 0]
                  [--drop-lr 1,3] [--drop-rl 2]

Frames from --left leave by --right after --delay-lr-ms, and the other way
round. --drop-lr 1,3 drops the 1st and 3rd TCP segments that carry payload
on their way left -> right (handshakes and pure ACKs always pass), so a test
knows exactly which data segments were lost.

The interfaces must be up, without addresses, in the namespace this runs
in. TCP checksums are recomputed: a veth may hand frames over with the
checksum left to offload. Prints "ready" once listening; stops on SIGTERM.
"""
import argparse
import heapq
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def tcp_payload_len(frame):
    """Payload bytes of an IPv4/IPv6 TCP frame, or None if it is not TCP.
    Fixes the TCP checksum in place (frame is a bytearray)."""
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    if ethertype == 0x0800:
        ihl = (frame[14] & 0x0F) * 4
        total = struct.unpack_from("!H", frame, 16)[0]
        if frame[23] != 6:
            return None
        tcp = 14 + ihl
        seg_len = total - ihl
        pseudo = bytes(frame[26:34]) + struct.pack("!BBH", 0, 6, seg_len)
    elif ethertype == 0x86DD:
        if frame[20] != 6:  # next header; no extension headers in our tests
            return None
        tcp = 14 + 40
        seg_len = struct.unpack_from("!H", frame, 18)[0]
        pseudo = bytes(frame[22:54]) + struct.pack("!IxxxB", seg_len, 6)
    else:
        return None
    doff = (frame[tcp + 12] >> 4) * 4
    frame[tcp + 16:tcp + 18] = b"\0\0"
    csum = checksum(pseudo + bytes(frame[tcp:tcp + seg_len]))
    struct.pack_into("!H", frame, tcp + 16, csum)
    return seg_len - doff


def open_port(name):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind((name, ETH_P_ALL))
    s.setblocking(False)
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--left", required=True)
    ap.add_argument("--right", required=True)
    ap.add_argument("--delay-lr-ms", type=float, default=0.0)
    ap.add_argument("--delay-rl-ms", type=float, default=0.0)
    ap.add_argument("--drop-lr", default="")
    ap.add_argument("--drop-rl", default="")
    opts = ap.parse_args()

    left, right = open_port(opts.left), open_port(opts.right)
    drops = {
        "lr": {int(n) for n in opts.drop_lr.split(",") if n},
        "rl": {int(n) for n in opts.drop_rl.split(",") if n},
    }
    seen = {"lr": 0, "rl": 0}
    routes = {
        left.fileno(): (left, right, opts.delay_lr_ms / 1000.0, "lr"),
        right.fileno(): (right, left, opts.delay_rl_ms / 1000.0, "rl"),
    }
    queue = []  # (due, seq, out_socket, frame)
    seq = 0
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while running:
        timeout = max(0.0, queue[0][0] - time.monotonic()) if queue else 0.5
        readable, _, _ = select.select([left, right], [], [], timeout)
        for sock in readable:
            src, out, delay, way = routes[sock.fileno()]
            while True:
                try:
                    data, addr = src.recvfrom(65535)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue  # our own frame leaving by this port
                frame = bytearray(data)
                payload = tcp_payload_len(frame) if len(frame) > 14 else None
                if payload:
                    seen[way] += 1
                    if seen[way] in drops[way]:
                        continue
                seq += 1
                heapq.heappush(queue, (time.monotonic() + delay, seq, out, bytes(frame)))
        now = time.monotonic()
        while queue and queue[0][0] <= now:
            _, _, out, frame = heapq.heappop(queue)
            try:
                out.send(frame)
            except OSError as e:  # e.g. a frame larger than the MTU: lost, as on a link
                print(f"delay_bridge: dropped a frame: {e}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Writes the seed corpus of http2_fuzz (tests/fuzz/corpus/http2): real
HTTP/2 conversations in the fuzzer's script format (see http2_fuzz.cc), so
that mutations start from valid frames and HPACK. Run with /usr/bin/python3
from the repository root; the seeds are committed."""
import pathlib
import struct

OUT = pathlib.Path("tests/fuzz/corpus/http2")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + \
        struct.pack(">I", stream) + payload


def s(v):  # HPACK string literal, no Huffman, length < 127
    return bytes([len(v)]) + v


def grpc_request(first):
    b = bytes([0x83, 0x86]) + bytes([0x04]) + s(b"/helloworld.Greeter/SayHello")
    if first:
        b += bytes([0x41]) + s(b"localhost:50051") + bytes([0x5f]) + s(b"application/grpc")
    else:
        b += bytes([0xbf, 0xbe])
    b += bytes([0x00]) + s(b"traceparent") + s(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    return b


def script(role, records, limits=1):
    """records: (direction 0 egress / 1 ingress, bytes, gap)"""
    out = bytearray([role, limits, 7])
    for direction, data, gap in records:
        for i in range(0, len(data), 64):
            chunk = data[i:i + 64]
            last = i + 64 >= len(data)
            ctl = (len(chunk) - 1) | (0x40 if direction else 0) | (0x80 if last and gap else 0)
            out += bytes([ctl]) + chunk
            if last and gap:
                out.append(gap)
    return bytes(out)


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    req1 = frame(1, 4, 1, grpc_request(True)) + frame(0, 1, 1, b"\0\0\0\0\5world")
    req3 = frame(1, 4, 3, grpc_request(False)) + frame(0, 1, 3, b"\0\0\0\0\5again")
    resp = lambda sid: frame(1, 4, sid, bytes([0x88]) + bytes([0x0f, 0x10]) + s(b"application/grpc")) + \
        frame(0, 0, sid, b"\0\0\0\0\5hello") + \
        frame(1, 5, sid, bytes([0x00]) + s(b"grpc-status") + s(b"0"))
    settings = frame(4, 0, 0, struct.pack(">HI", 1, 4096))
    seeds = {
        "grpc_client_two_calls": script(2, [(0, PREFACE + settings + req1 + req3, 0),
                                            (1, settings + frame(4, 1, 0), 0),
                                            (1, resp(3) + resp(1), 0)]),
        "grpc_server_settings_first": script(0, [(0, settings, 0),
                                                 (1, PREFACE + settings + req1, 0),
                                                 (0, resp(1), 0)]),
        "midway_join": script(1, [(1, req3, 0), (0, resp(3), 0)]),
        "gap_in_headers": script(2, [(0, PREFACE + settings + req1[:20], len(req1) - 20),
                                     (0, req3, 0), (1, resp(1) + resp(3), 0)]),
        "rst_and_goaway": script(2, [(0, PREFACE + req1 + req3, 0),
                                     (0, frame(3, 0, 1, struct.pack(">I", 8)), 0),
                                     (1, frame(7, 0, 0, struct.pack(">II", 1, 0)), 0)]),
    }
    for name, data in seeds.items():
        (OUT / name).write_bytes(data)


if __name__ == "__main__":
    main()

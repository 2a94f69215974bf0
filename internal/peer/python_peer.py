# A TLS peer built on Python's ssl module, driven line by line over
# standard input for the tests of github.com/closenotify/openssl. The Go
# side (python.go) documents the protocol; this file is run with
# "python3 -c" and takes its options as arguments.
#
# Replies, one line each: PYTHON <version> <OpenSSL version>, READY <port>,
# CONNECTED <version>, SENT <n>, DATA <hex>, EOF, UNWRAPPED, CLOSED, ERROR <Class>: <text>.
import argparse
import socket
import ssl
import struct
import sys


def out(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def error(e):
    out("ERROR %s: %s" % (type(e).__name__, str(e).replace("\n", " ")))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["client", "server"], required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--server-hostname", default="localhost")
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--tls", choices=["", "1.2", "1.3"], default="")
    ap.add_argument("--suppress-ragged-eofs", choices=["true", "false"], default="false")
    ap.add_argument("--ignore-unexpected-eof", choices=["true", "false"], default="false")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()
    out("PYTHON %d.%d.%d %s" % (sys.version_info[:3] + (ssl.OPENSSL_VERSION,)))

    if a.mode == "server":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(a.ca)
    if a.tls:
        v = ssl.TLSVersion.TLSv1_2 if a.tls == "1.2" else ssl.TLSVersion.TLSv1_3
        ctx.minimum_version = v
        ctx.maximum_version = v
    # Python 3.10.0 to 3.10.10 and 3.11.0 to 3.11.2 set this option by
    # default; later versions do not. Set it explicitly either way.
    if a.ignore_unexpected_eof == "true":
        ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    else:
        ctx.options &= ~ssl.OP_IGNORE_UNEXPECTED_EOF
    suppress = a.suppress_ragged_eofs == "true"

    try:
        if a.mode == "server":
            ln = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            ln.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ln.bind((a.host, a.port))
            ln.listen(1)
            out("READY %d" % ln.getsockname()[1])
            ln.settimeout(a.timeout)
            raw, _ = ln.accept()
            ln.close()
            raw.settimeout(a.timeout)
            s = ctx.wrap_socket(raw, server_side=True, suppress_ragged_eofs=suppress)
        else:
            raw = socket.create_connection((a.host, a.port), timeout=a.timeout)
            s = ctx.wrap_socket(raw, server_hostname=a.server_hostname, suppress_ragged_eofs=suppress)
    except Exception as e:
        error(e)
        return 1
    out("CONNECTED %s" % s.version())

    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "send":
                data = bytes.fromhex(arg)
                s.sendall(data)
                out("SENT %d" % len(data))
            elif cmd == "recv":
                data = s.recv(int(arg))
                out("DATA " + data.hex() if data else "EOF")
            elif cmd == "recvall":
                got = bytearray()
                try:
                    while True:
                        data = s.recv(65536)
                        if not data:
                            break
                        got += data
                finally:
                    out("DATA " + bytes(got).hex())
                out("EOF")
            elif cmd == "unwrap":
                s = s.unwrap()
                out("UNWRAPPED")
            elif cmd == "close":
                s.close()
                out("CLOSED")
            elif cmd == "rawclose":
                socket.socket(fileno=s.detach()).close()
                out("CLOSED")
            elif cmd == "reset":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                socket.socket(fileno=s.detach()).close()
                out("CLOSED")
            else:
                out("ERROR ValueError: unknown command %r" % cmd)
        except Exception as e:
            error(e)
    return 0


sys.exit(main())

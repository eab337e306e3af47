"""A libzmq socket driven over stdin/stdout, for zring's interop tests.

Usage: lzpeer.py KIND. One request per line, one reply per line:
  bind ENDPOINT        -> ok LAST_ENDPOINT
  connect ENDPOINT     -> ok
  send HEX[,HEX...]    -> ok            (one multipart message)
  recv TIMEOUT_MS      -> ok HEX[,HEX...] | none
  sub HEX | unsub HEX  -> ok
  set OPTION VALUE     -> ok            (integer options)
Any failure replies `err TEXT`; the peer keeps running.
"""

import sys

import zmq


def main():
    ctx = zmq.Context.instance()
    sock = ctx.socket(getattr(zmq, sys.argv[1]))
    sock.setsockopt(zmq.LINGER, 0)
    for line in sys.stdin:
        command, _, arg = line.rstrip("\n").partition(" ")
        try:
            reply = handle(sock, command, arg)
        except Exception as e:  # report, never die: the test reads the text
            reply = "err %s: %s" % (type(e).__name__, e)
        sys.stdout.write(reply + "\n")
        sys.stdout.flush()


def handle(sock, command, arg):
    if command == "bind":
        sock.bind(arg)
        return "ok " + sock.getsockopt_string(zmq.LAST_ENDPOINT)
    if command == "connect":
        sock.connect(arg)
        return "ok"
    if command == "send":
        sock.send_multipart([bytes.fromhex(f) for f in arg.split(",")])
        return "ok"
    if command == "recv":
        if not sock.poll(int(arg), zmq.POLLIN):
            return "none"
        return "ok " + ",".join(f.hex() for f in sock.recv_multipart())
    if command == "sub":
        sock.setsockopt(zmq.SUBSCRIBE, bytes.fromhex(arg))
        return "ok"
    if command == "unsub":
        sock.setsockopt(zmq.UNSUBSCRIBE, bytes.fromhex(arg))
        return "ok"
    if command == "set":
        option, value = arg.split(" ")
        sock.setsockopt(int(option), int(value))
        return "ok"
    return "err unknown request " + command


if __name__ == "__main__":
    main()

"""A libzmq socket driven over stdin/stdout, for zring's interop tests.

Usage: lzpeer.py KIND. One request per line, one reply per line:
  bind ENDPOINT        -> ok LAST_ENDPOINT
  connect ENDPOINT     -> ok
  send HEX[,HEX...]    -> ok            (one multipart message)
  trysend HEX[,HEX...] -> ok | none     (the same without blocking)
  recv TIMEOUT_MS      -> ok HEX[,HEX...] | none
  sub HEX | unsub HEX  -> ok
  set OPTION VALUE     -> ok            (integer options)
  setbytes OPTION HEX  -> ok            (byte options: CURVE keys, PLAIN credentials)
  zap [CURVE:HEX | PLAIN:HEX:HEX]...
                       -> ok            (a ZAP handler admitting exactly these)
  monitor              -> ok            (start recording handshake events)
  event TIMEOUT_MS     -> ok EVENT VALUE | none
Any failure replies `err TEXT`; the peer keeps running.
"""

import sys
import threading

import zmq
import zmq.utils.monitor

MONITOR = {}


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
    if command == "trysend":
        try:
            sock.send_multipart([bytes.fromhex(f) for f in arg.split(",")], zmq.NOBLOCK)
        except zmq.Again:
            return "none"
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
    if command == "setbytes":
        option, value = arg.split(" ")
        sock.setsockopt(int(option), bytes.fromhex(value))
        return "ok"
    if command == "zap":
        start_zap(sock.context, arg.split())
        return "ok"
    if command == "monitor":
        MONITOR["socket"] = sock.get_monitor_socket()
        return "ok"
    if command == "event":
        mon = MONITOR["socket"]
        if not mon.poll(int(arg), zmq.POLLIN):
            return "none"
        event = zmq.utils.monitor.recv_monitor_message(mon)
        return "ok %d %d" % (event["event"], event["value"])
    return "err unknown request " + command


def start_zap(ctx, allowed):
    """A ZAP handler (RFC 27) on the socket's context, as Zeek binds one."""
    curve = {bytes.fromhex(a[6:]) for a in allowed if a.startswith("CURVE:")}
    plain = set()
    for a in allowed:
        if a.startswith("PLAIN:"):
            user, password = a[6:].split(":")
            plain.add((bytes.fromhex(user), bytes.fromhex(password)))
    zap = ctx.socket(zmq.REP)
    zap.setsockopt(zmq.LINGER, 0)
    zap.bind("inproc://zeromq.zap.01")

    def serve():
        while True:
            request = zap.recv_multipart()
            version, request_id, _domain, _address, _identity, mechanism = request[:6]
            credentials = request[6:]
            if mechanism == b"CURVE":
                ok = credentials[0] in curve
            elif mechanism == b"PLAIN":
                ok = (credentials[0], credentials[1]) in plain
            else:
                ok = False
            status = [b"200", b"OK"] if ok else [b"400", b"denied"]
            zap.send_multipart([version, request_id] + status + [b"", b""])

    threading.Thread(target=serve, daemon=True).start()


if __name__ == "__main__":
    main()

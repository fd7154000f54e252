#!/usr/bin/env python3
"""WebSockets through forward proxies (CONNECT tunnels) between real peers, for wstap's test captures.

usage: proxy_peers.py SCENARIO BASEPORT LOGFILE KEYLOG

  tunnel-http1   tinyproxy on BASEPORT; a python-websockets client given the proxy (HTTP/1.1
                 CONNECT): wss:// to a websockets server on BASEPORT+1 (TLS, the client writes
                 its key log to KEYLOG), text and binary echoed, close 1000; then ws:// to a server
                 on BASEPORT+2 (permessage-deflate), text echoed, close 1000.
  h2-proxy       nghttpx in HTTP/2 proxy mode (-s, cleartext frontend: h2c with prior knowledge)
                 on BASEPORT, forwarding to tinyproxy on BASEPORT+3; a client driven with the h2
                 library opens classic CONNECT streams (RFC 9113 §8.5): one to the ws:// server
                 (an HTTP/1.1 Upgrade and frames inside the stream, by websockets' sans-I/O
                 client), one to the wss:// server (TLS inside the stream through ssl.MemoryBIO,
                 key log to KEYLOG), an ordinary GET through the proxy between them, and a
                 third tunnel whose WebSocket the client resets (RST_STREAM CANCEL) in the middle
                 of a fragmented message (its first fragment sent, logged as what was sent of it).

Only the client's leg (to BASEPORT) is meant to be captured. LOGFILE gets the messages each side
sent ({"dir", "opcode", "length", "sha256"}, in order per direction) as the golden tests expect.
"""
import asyncio, os, socket, ssl, subprocess, sys, threading, time

from peer_log import sent, self_signed_certificate, write_log


def origin_servers(port, cert, key, stop):
    """websockets echo servers: wss:// on PORT+1, ws:// on PORT+2; each logs what it sends."""
    from websockets.asyncio.server import serve

    async def echo(connection):
        async for message in connection:
            sent("s2c", 1 if isinstance(message, str) else 2, message)
            await connection.send(message)

    async def run():
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        async with serve(echo, "127.0.0.1", port + 1, ssl=context), serve(echo, "127.0.0.1", port + 2):
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    asyncio.run(run())


def start_tinyproxy(port, work):
    config = os.path.join(work, "tinyproxy.conf")
    with open(config, "w") as out:
        out.write(f"Port {port}\nListen 127.0.0.1\nAllow 127.0.0.1\nTimeout 30\nLogLevel Warning\n"
                  f"PidFile \"{work}/tinyproxy.pid\"\nLogFile \"{work}/tinyproxy.log\"\nMaxClients 20\n")
    return subprocess.Popen(["tinyproxy", "-d", "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def client_context(keylog):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.keylog_filename = keylog
    return context


async def tunnel_http1(port, keylog):
    from websockets.asyncio.client import connect
    proxy = f"http://127.0.0.1:{port}"
    async with connect(f"wss://localhost:{port + 1}/secure", proxy=proxy, ssl=client_context(keylog),
                       compression=None) as ws:
        for message in ["hello through the proxy", bytes(range(200)) * 15]:
            sent("c2s", 1 if isinstance(message, str) else 2, message)
            await ws.send(message)
            await ws.recv()
        await ws.close(1000, "bye")
    async with connect(f"ws://127.0.0.1:{port + 2}/plain?room=7", proxy=proxy) as ws:
        message = "compressed inside the tunnel " * 20
        sent("c2s", 1, message)
        await ws.send(message)
        await ws.recv()
        await ws.close(1000, "bye")


class H2Client:
    """An HTTP/2 client (h2 library) in cleartext with prior knowledge."""

    def __init__(self, port):
        import h2.config, h2.connection
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.conn.initiate_connection()
        self.flush()
        self.events = []
        self.received = {}

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def pump(self):
        import h2.events
        data = self.sock.recv(65536)
        assert data, "the proxy closed the connection"
        for event in self.conn.receive_data(data):
            if isinstance(event, h2.events.DataReceived):
                self.received.setdefault(event.stream_id, bytearray()).extend(event.data)
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            else:
                self.events.append(event)
        self.flush()

    def wait(self, accept):
        while True:
            for index, event in enumerate(self.events):
                if accept(event):
                    return self.events.pop(index)
            self.pump()

    def request(self, headers, end_stream=False):
        import h2.events
        stream = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream, headers, end_stream=end_stream)
        self.flush()
        response = self.wait(lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream)
        return stream, dict(response.headers)[b":status"]

    def send(self, stream, data):
        size = self.conn.max_outbound_frame_size
        for start in range(0, len(data), size):
            self.conn.send_data(stream, data[start:start + size])
        self.flush()

    def take(self, stream):
        """The stream's bytes received so far (waits for at least one)."""
        while not self.received.get(stream):
            self.pump()
        data = bytes(self.received[stream])
        self.received[stream].clear()
        return data


class TunnelTLS:
    """TLS over an HTTP/2 stream (ssl.MemoryBIO): what a browser does inside a CONNECT tunnel."""

    def __init__(self, client, stream, keylog):
        self.client, self.stream = client, stream
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = client_context(keylog).wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                self.incoming.write(client.take(stream))
        self.flush()

    def flush(self):
        data = self.outgoing.read()
        if data:
            self.client.send(self.stream, data)

    def send(self, data):
        self.tls.write(data)
        self.flush()

    def take(self):
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                self.flush()
                self.incoming.write(self.client.take(self.stream))


class PlainTunnel:
    def __init__(self, client, stream):
        self.client, self.stream = client, stream

    def send(self, data):
        self.client.send(self.stream, data)

    def take(self):
        return self.client.take(self.stream)


def websocket_over(tunnel, uri, messages, abandon=None):
    """A WebSocket client (websockets' sans-I/O protocol) over a tunnel: handshake, echoes, close
    1000; or, with `abandon`, that text's first fragment and no more (the caller resets the stream)."""
    from websockets.client import ClientProtocol
    from websockets.frames import Close
    from websockets.http11 import Response
    from websockets.uri import parse_uri
    protocol = ClientProtocol(parse_uri(uri))
    protocol.send_request(protocol.connect())
    tunnel.send(b"".join(protocol.data_to_send()))
    events = []

    def next_event():
        while not events:
            protocol.receive_data(tunnel.take())
            events.extend(protocol.events_received())
            pending = b"".join(protocol.data_to_send())
            if pending:
                tunnel.send(pending)
        return events.pop(0)

    assert isinstance(next_event(), Response)
    for message in messages:
        sent("c2s", 1 if isinstance(message, str) else 2, message)
        if isinstance(message, str):
            protocol.send_text(message.encode())
        else:
            protocol.send_binary(message)
        tunnel.send(b"".join(protocol.data_to_send()))
        next_event()
    if abandon is not None:
        sent("c2s", 1, abandon)
        protocol.send_text(abandon.encode(), fin=False)
        tunnel.send(b"".join(protocol.data_to_send()))
        return
    protocol.send_close(1000, "bye")
    tunnel.send(b"".join(protocol.data_to_send()))
    while True:
        frame = next_event()
        if getattr(frame, "opcode", None) is not None and frame.opcode.name == "CLOSE":
            break


def h2_proxy(port, keylog, work):
    import h2.events
    nghttpx = subprocess.Popen(
        ["nghttpx", "-s", f"--frontend=127.0.0.1,{port};no-tls", f"--backend=127.0.0.1,{port + 3}",
         "--single-thread", "--no-ocsp", f"--pid-file={work}/nghttpx.pid", "--errorlog-file=" + os.path.join(work, "nghttpx.log"),
         "--accesslog-file=" + os.path.join(work, "access.log")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        client = H2Client(port)
        client.wait(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))
        plain, status = client.request([(":method", "CONNECT"), (":authority", f"127.0.0.1:{port + 2}")])
        assert status == b"200", status
        websocket_over(PlainTunnel(client, plain), f"ws://127.0.0.1:{port + 2}/in-h2-tunnel",
                       ["plain WebSocket inside an HTTP/2 CONNECT stream", bytes(range(256)) * 80])
        get, status = client.request([(":method", "GET"), (":scheme", "http"), (":authority", f"127.0.0.1:{port + 2}"),
                                      (":path", "/not-a-websocket")], end_stream=True)
        client.wait(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == get)
        secure, status = client.request([(":method", "CONNECT"), (":authority", f"localhost:{port + 1}")])
        assert status == b"200", status
        websocket_over(TunnelTLS(client, secure, keylog), f"wss://localhost:{port + 1}/in-h2-tls-tunnel",
                       ["wss inside an HTTP/2 CONNECT stream"])
        reset, status = client.request([(":method", "CONNECT"), (":authority", f"127.0.0.1:{port + 2}")])
        assert status == b"200", status
        websocket_over(PlainTunnel(client, reset), f"ws://127.0.0.1:{port + 2}/reset-mid-message", ["one whole message"],
                       abandon="the first fragment of a message the client abandons")
        import h2.errors
        client.conn.reset_stream(reset, h2.errors.ErrorCodes.CANCEL)
        client.flush()
        time.sleep(0.2)
        import h2.exceptions
        for stream in (plain, secure):
            try:  # nghttpx may have ended a tunnel already, when its origin closed
                client.conn.end_stream(stream)
            except h2.exceptions.StreamClosedError:
                pass
        client.flush()
        time.sleep(0.5)
        client.conn.close_connection()
        client.flush()
        time.sleep(0.2)
        client.sock.close()
    finally:
        nghttpx.terminate()
        nghttpx.wait()


def main():
    scenario, port, logfile, keylog = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    assert scenario in ("tunnel-http1", "h2-proxy"), scenario
    work, cert, key = self_signed_certificate()
    stop = threading.Event()
    servers = threading.Thread(target=origin_servers, args=(port, cert, key, stop), daemon=True)
    servers.start()
    proxy = start_tinyproxy(port if scenario == "tunnel-http1" else port + 3, work)
    time.sleep(1.0)
    if os.path.exists(keylog):
        os.unlink(keylog)
    try:
        if scenario == "tunnel-http1":
            asyncio.run(tunnel_http1(port, keylog))
        else:
            h2_proxy(port, keylog, work)
        time.sleep(0.3)
    finally:
        proxy.terminate()
        proxy.wait()
        stop.set()
        servers.join(timeout=5)
    write_log(logfile, "tinyproxy 1.11 (and nghttpx -s in front of it for h2-proxy) with python-websockets origin servers")


if __name__ == "__main__":
    main()

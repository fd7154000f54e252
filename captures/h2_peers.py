#!/usr/bin/env python3
"""WebSocket over HTTP/2 (RFC 8441) between real peers, for wstap's test captures.

usage: h2_peers.py SCENARIO PORT LOGFILE [KEYLOG]

  h2-tls-rfc8441  hypercorn (an ASGI echo app, TLS with ALPN h2; its SETTINGS enable extended
                  CONNECT) and a client driven with the h2 library and wsproto's RFC 6455 frame
                  codec, writing the TLS key log to KEYLOG: a WebSocket stream that echoes text,
                  binary across DATA frames and a fragmented message, then closes 1000 with
                  END_STREAM; a path the app refuses (403); a stream the client resets
                  (RST_STREAM CANCEL) after one message; an ordinary GET between them; GOAWAY.
  h2c-upgrade     hypercorn in cleartext (keep_alive_max_requests 1) and the same client starting
                  with an HTTP/1.1 request that offers `Upgrade: h2c` (HTTP2-Settings from the h2
                  library): the 101, the request's answer on stream 1, then a WebSocket stream
                  (extended CONNECT, :scheme http) that makes hypercorn send GOAWAY (last stream 3)
                  while it is open. The client goes on with the open stream as RFC 9113 §6.8
                  allows (the h2 library refuses to send after a GOAWAY, so its DATA frame is
                  serialised by hyperframe): hypercorn's h2 state machine has closed the connection
                  and answers with a second GOAWAY, PROTOCOL_ERROR, and closes TCP: the WebSocket
                  stream ends with no Close frame (what a user of this server sees).

LOGFILE gets the messages each side sent ({"dir", "opcode", "length", "sha256"}, in order per
direction) as the golden tests expect.
"""
import asyncio, os, socket, ssl, sys, threading, time

from peer_log import sent, self_signed_certificate, write_log


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            if event["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif event["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] == "http":
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"hello over h2"})
        return
    # WebSocket
    await receive()  # websocket.connect
    if scope["path"].startswith("/refuse"):
        await send({"type": "websocket.close", "code": 1008})  # before accepting: an HTTP 403
        return
    offered = scope.get("subprotocols") or []
    await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
    while True:
        event = await receive()
        if event["type"] != "websocket.receive":
            return
        if event.get("text") is not None:
            sent("s2c", 1, event["text"])
            await send({"type": "websocket.send", "text": event["text"]})
        else:
            sent("s2c", 2, event["bytes"])
            await send({"type": "websocket.send", "bytes": event["bytes"]})


def serve(port, cert, key, stop, max_requests=None):
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    if cert:
        config.certfile, config.keyfile = cert, key
        config.alpn_protocols = ["h2"]
    if max_requests:
        config.keep_alive_max_requests = max_requests

    async def run():
        await hypercorn_serve(app, config, shutdown_trigger=lambda: asyncio.get_running_loop().run_in_executor(None, stop.wait))
    asyncio.run(run())


class Client:
    """An HTTP/2 client with the h2 library, over TLS (ALPN h2, `keylog`) or in cleartext after an
    HTTP/1.1 `Upgrade: h2c` (`keylog` None); WebSocket frames by wsproto's codec."""

    def __init__(self, port, keylog):
        import h2.config, h2.connection
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.port = port
        self.events = []
        self.scheme = "https" if keylog else "http"
        if keylog:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            context.set_alpn_protocols(["h2"])
            context.keylog_filename = keylog
            self.sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port)), server_hostname="localhost")
            assert self.sock.selected_alpn_protocol() == "h2"
            self.conn.initiate_connection()
            self.flush()
            return
        self.sock = socket.create_connection(("127.0.0.1", port))
        settings = self.conn.initiate_upgrade_connection().decode()
        self.sock.sendall(f"GET /hello HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: Upgrade, HTTP2-Settings\r\n"
                          f"Upgrade: h2c\r\nHTTP2-Settings: {settings}\r\n\r\n".encode())
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            answer += data
        head, rest = answer.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 101"), head
        self.flush()  # the client preface and SETTINGS
        for event in self.conn.receive_data(rest):
            self.events.append(event)
        self.flush()

    def flush(self):
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def wait(self, accept):
        """Reads until an event `accept` takes arrives; returns it."""
        while True:
            for index, event in enumerate(self.events):
                if accept(event):
                    return self.events.pop(index)
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            for event in self.conn.receive_data(data):
                self.events.append(event)
                if hasattr(event, "flow_controlled_length") and event.flow_controlled_length:
                    self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            self.flush()

    def websocket(self, path, subprotocols=None):
        import h2.events
        from wsproto.frame_protocol import FrameProtocol
        stream = self.conn.get_next_available_stream_id()
        headers = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", self.scheme), (":path", path),
                   (":authority", f"localhost:{self.port}"), ("sec-websocket-version", "13")]
        if subprotocols:
            headers.append(("sec-websocket-protocol", ", ".join(subprotocols)))
        self.conn.send_headers(stream, headers)
        self.flush()
        response = self.wait(lambda e: isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream)
        status = dict(response.headers)[b":status"]
        return stream, status, FrameProtocol(client=True, extensions=[])

    def data(self, stream, payload, end_stream=False):
        """Bytes on a stream in DATA frames no larger than the peer allows (a WebSocket frame spans them)."""
        size = self.conn.max_outbound_frame_size
        pieces = [payload[start:start + size] for start in range(0, len(payload), size)] or [b""]
        for index, piece in enumerate(pieces):
            self.conn.send_data(stream, piece, end_stream=end_stream and index == len(pieces) - 1)
        self.flush()

    def send(self, stream, codec, data, end_stream=False):
        """One WebSocket message; `data` a str (text) or bytes (binary), in one frame."""
        self.data(stream, codec.send_data(data, fin=True), end_stream=end_stream)
        sent("c2s", 1 if isinstance(data, str) else 2, data)

    def fragmented(self, stream, codec, pieces):
        for index, piece in enumerate(pieces):
            self.data(stream, codec.send_data(piece, fin=index == len(pieces) - 1))
        sent("c2s", 1, "".join(pieces))

    def receive_message(self, stream, codec):
        import h2.events
        parts = []
        while True:
            for frame in codec.received_frames():
                parts.append(frame.payload)
                if frame.message_finished:
                    return parts[0][:0].join(parts) if parts else b""
            event = self.wait(lambda e: isinstance(e, h2.events.DataReceived) and e.stream_id == stream)
            codec.receive_bytes(event.data)


def h2c_upgrade(port, logfile):
    import h2.events
    from hyperframe.frame import DataFrame, Frame
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(port, None, None, stop, 1), daemon=True)
    server.start()
    time.sleep(1.5)
    client = Client(port, None)
    client.wait(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == 1)
    echo, status, codec = client.websocket("/ws/echo?case=h2c")
    assert status == b"200", status
    client.wait(lambda e: isinstance(e, h2.events.ConnectionTerminated))
    # After GOAWAY the open stream goes on: its DATA frames by hyperframe, as h2 refuses.
    def data(payload, end_stream=False):
        frame = DataFrame(echo, data=payload)
        if end_stream:
            frame.flags.add("END_STREAM")
        client.sock.sendall(frame.serialize())

    buffer = bytearray()

    def receive():
        while True:
            for frame in codec.received_frames():
                return frame
            while True:
                if len(buffer) >= 9:
                    frame, length = Frame.parse_frame_header(memoryview(bytes(buffer[:9])))
                    if len(buffer) >= 9 + length:
                        frame.parse_body(memoryview(bytes(buffer[9:9 + length])))
                        del buffer[:9 + length]
                        if isinstance(frame, DataFrame) and frame.stream_id == echo:
                            codec.receive_bytes(frame.data)
                            break
                        continue
                chunk = client.sock.recv(65536)
                assert chunk, "the server closed the connection"
                buffer.extend(chunk)

    message = "hello over h2c after GOAWAY"
    data(codec.send_data(message, fin=True))
    sent("c2s", 1, message)
    try:
        receive()
        raise AssertionError("hypercorn answered on the stream after its GOAWAY")
    except AssertionError as closed:
        assert "closed the connection" in str(closed), closed
    time.sleep(0.2)
    client.sock.close()
    stop.set()
    server.join(timeout=5)
    write_log(logfile, "hypercorn in cleartext after Upgrade: h2c, an h2 + wsproto client; hypercorn's GOAWAY while a WebSocket stream is open, then PROTOCOL_ERROR for the stream's next DATA")


def main():
    scenario, port, logfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    assert scenario in ("h2-tls-rfc8441", "h2c-upgrade"), scenario
    if scenario == "h2c-upgrade":
        return h2c_upgrade(port, logfile)
    keylog = sys.argv[4]
    import h2.errors, h2.events
    work, cert, key = self_signed_certificate()
    stop = threading.Event()
    server = threading.Thread(target=serve, args=(port, cert, key, stop), daemon=True)
    server.start()
    time.sleep(1.5)
    if os.path.exists(keylog):
        os.unlink(keylog)
    client = Client(port, keylog)
    client.wait(lambda e: isinstance(e, h2.events.RemoteSettingsChanged))

    echo, status, codec = client.websocket("/ws/echo?case=tls", ["chat", "superchat"])
    assert status == b"200", status
    client.send(echo, codec, "hello over HTTP/2")
    client.receive_message(echo, codec)
    client.send(echo, codec, bytes(range(256)) * 100)  # 25,600 bytes: more than one DATA frame
    client.receive_message(echo, codec)

    refused, status, _ = client.websocket("/refuse/this")
    assert status == b"403", status

    get = client.conn.get_next_available_stream_id()
    client.conn.send_headers(get, [(":method", "GET"), (":scheme", "https"), (":path", "/hello"),
                                   (":authority", f"localhost:{port}")], end_stream=True)
    client.flush()
    client.wait(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == get)

    reset, status, reset_codec = client.websocket("/ws/reset")
    assert status == b"200", status
    client.send(reset, reset_codec, "this stream is cancelled after its echo")
    client.receive_message(reset, reset_codec)
    client.conn.reset_stream(reset, h2.errors.ErrorCodes.CANCEL)
    client.flush()
    time.sleep(0.2)

    client.fragmented(echo, codec, ["frag", "mented ", "text"])
    client.receive_message(echo, codec)
    from wsproto.frame_protocol import CloseReason
    client.data(echo, codec.close(CloseReason.NORMAL_CLOSURE, "done"), end_stream=True)
    time.sleep(0.5)
    client.conn.close_connection()
    client.flush()
    time.sleep(0.3)
    client.sock.close()
    stop.set()
    server.join(timeout=5)
    write_log(logfile, "hypercorn (TLS, ALPN h2) and an h2 + wsproto client; RFC 8441 streams, a 403, a reset, a GET", subprotocol="chat")


if __name__ == "__main__":
    main()

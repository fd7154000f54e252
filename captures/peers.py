#!/usr/bin/env python3
"""Real WebSocket peers for recording wstap's test captures on loopback.

usage: peers.py SCENARIO PORT LOGFILE [HOST]

Runs a server and a client for one scenario and writes LOGFILE: the messages each peer sent,
as the peers themselves know them ({"dir", "opcode", "length", "sha256"}), and the handshake
outcome. wstap's decoding of the capture is checked against this log by the golden tests.
Well-behaved peers use python `websockets`; deliberately broken or unusual ones use raw sockets.
"""
import asyncio, base64, hashlib, json, os, socket, struct, sys

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory, ServerPerMessageDeflateFactory

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
LOG = {"messages": []}


def sent(direction, opcode, data):
    if isinstance(data, str):
        data = data.encode()
    LOG["messages"].append({"dir": direction, "opcode": opcode, "length": len(data),
                            "sha256": hashlib.sha256(data).hexdigest()})


def accept_for(key):
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def frame(opcode, payload, fin=True, mask=True, rsv=0):
    """A raw RFC 6455 frame; masked with a fixed key so captures are reproducible."""
    head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
    n = len(payload)
    m = 0x80 if mask else 0
    if n < 126:
        head += bytes([m | n])
    elif n < 65536:
        head += bytes([m | 126]) + struct.pack("!H", n)
    else:
        head += bytes([m | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = b"\x37\xfa\x21\x3d"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head.decode(), rest


def recv_exactly(sock, n, buf=b""):
    while len(buf) < n:
        chunk = sock.recv(65536)
        if not chunk:
            break
        buf += chunk
    return buf


async def echo_handler(ws):
    async for message in ws:
        sent("s2c", 1 if isinstance(message, str) else 2, message)
        await ws.send(message)


async def lib_server(port, host, handler=echo_handler, **kwargs):
    return await serve(handler, host, port, **kwargs)


def uri(host, port, path):
    h = f"[{host}]" if ":" in host else host
    return f"ws://{h}:{port}{path}"


async def text_echo(port, host):
    async with await lib_server(port, host, compression=None):
        async with connect(uri(host, port, "/echo"), compression=None) as ws:
            for text in ["hello", "Grüße, мир! ✓ 😀", "x" * 300, "\x1b[31mred\x1b[0m and \u202e reversed"]:
                sent("c2s", 1, text)
                await ws.send(text)
                await ws.recv()
            await ws.close(1000, "normal bye")


async def chat_stream(port, host):
    """Many small text messages each way, one frame each: the material for gap and resync tests."""
    async with await lib_server(port, host, compression=None):
        async with connect(uri(host, port, "/chat"), compression=None) as ws:
            for i in range(40):
                text = f"message {i:02d} " + "lorem ipsum dolor sit amet " * (1 + i % 6)
                sent("c2s", 1, text)
                await ws.send(text)
                await ws.recv()
            await ws.close(1000, "chat over")


async def binary_sizes(port, host):
    async with await lib_server(port, host, compression=None, max_size=None):
        async with connect(uri(host, port, "/bin"), compression=None, max_size=None) as ws:
            for size in [0, 125, 126, 65535, 65536, 1 << 20]:
                data = bytes((i * 7 + size) & 0xFF for i in range(size))
                sent("c2s", 2, data)
                await ws.send(data)
                await ws.recv()
            await ws.close()


async def ping_close_codes(port, host):
    async with await lib_server(port, host, compression=None):
        async with connect(uri(host, port, "/ping"), compression=None) as ws:
            pong = await ws.ping(b"are you there")
            await pong
            sent("c2s", 1, "after ping")
            await ws.send("after ping")
            await ws.recv()
            await ws.close(4001, "custom close")
        async with connect(uri(host, port, "/away"), compression=None) as ws:
            await ws.close(1001, "going away")


async def subprotocol(port, host):
    async with await lib_server(port, host, compression=None, subprotocols=["superchat", "chat"]):
        async with connect(uri(host, port, "/proto"), compression=None, subprotocols=["chat", "superchat"]) as ws:
            LOG["subprotocol"] = ws.subprotocol
            sent("c2s", 1, "which protocol?")
            await ws.send("which protocol?")
            await ws.recv()


async def deflate(port, host):
    async with await lib_server(port, host):
        async with connect(uri(host, port, "/deflate")) as ws:
            for i in range(6):
                text = json.dumps({"event": "tick", "seq": i, "note": "repetitive payload " * 8})
                sent("c2s", 1, text)
                await ws.send(text)
                await ws.recv()
            data = bytes(range(256)) * 300
            sent("c2s", 2, data)
            await ws.send(data)
            await ws.recv()


async def compressed_conversation(port, host, path, client_options, server_options, fragmented=False):
    """Text and binary messages both ways with the given permessage-deflate settings."""
    server_ext = [ServerPerMessageDeflateFactory(**server_options)]
    client_ext = [ClientPerMessageDeflateFactory(**client_options)]
    async with await lib_server(port, host, compression=None, extensions=server_ext, max_size=None):
        async with connect(uri(host, port, path), compression=None, extensions=client_ext, max_size=None) as ws:
            LOG["extensions"] = ws.response.headers.get("Sec-WebSocket-Extensions")
            for i in range(5):
                text = json.dumps({"seq": i, "symbol": "ACME", "note": "the same words again and again " * 4})
                if fragmented:
                    parts = [text[:10], text[10:50], text[50:]]
                    sent("c2s", 1, text)
                    await ws.send(parts)
                else:
                    sent("c2s", 1, text)
                    await ws.send(text)
                await ws.recv()
            data = b"".join(struct.pack("!I", i) * 4 for i in range(40000))
            sent("c2s", 2, data)
            await ws.send(data)
            await ws.recv()
            await ws.close(1000, "compressed bye")


async def deflate_no_context_client(port, host):
    await compressed_conversation(port, host, "/ncc", {"client_no_context_takeover": True},
                                  {"client_no_context_takeover": True})


async def deflate_no_context_server(port, host):
    await compressed_conversation(port, host, "/ncs", {"server_no_context_takeover": True},
                                  {"server_no_context_takeover": True})


async def deflate_window_bits(port, host):
    await compressed_conversation(port, host, "/wb9", {"server_max_window_bits": 9, "client_max_window_bits": 9},
                                  {"server_max_window_bits": 9, "client_max_window_bits": 9})
    await compressed_conversation(port + 1, host, "/wb15", {"server_max_window_bits": 15, "client_max_window_bits": 15},
                                  {"server_max_window_bits": 15, "client_max_window_bits": 15})


async def deflate_fragmented(port, host):
    await compressed_conversation(port, host, "/frag", {}, {}, fragmented=True)


async def rejected(port, host):
    async def forbid(connection, request):
        if request.path == "/forbidden":
            return connection.respond(403, "not for you\n")
    async with await lib_server(port, host, process_request=forbid):
        try:
            async with connect(uri(host, port, "/forbidden")):
                pass
        except websockets.exceptions.InvalidStatus as error:
            LOG["forbidden_status"] = error.response.status_code
    raw = socket.create_server((host, port + 1))
    raw.setblocking(False)
    async def raw_server():
        loop = asyncio.get_running_loop()
        for answer in [b"HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
                       b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 20\r\n\r\n<html>no ws</html>\r\n"]:
            conn, _ = await loop.sock_accept(raw)
            conn.setblocking(True)
            await loop.run_in_executor(None, read_head, conn)
            await loop.sock_sendall(conn, answer)
            conn.close()
    task = asyncio.create_task(raw_server())
    for path, version in [("/v8", "8"), ("/plain", "13")]:
        s = await asyncio.get_running_loop().run_in_executor(None, socket.create_connection, (host, port + 1))
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: {version}\r\n\r\n".encode())
        await asyncio.get_running_loop().run_in_executor(None, recv_exactly, s, 1 << 20)
        s.close()
    await task
    raw.close()


async def bad_accept(port, host):
    raw = socket.create_server((host, port))
    raw.setblocking(False)
    async def raw_server():
        loop = asyncio.get_running_loop()
        conn, _ = await loop.sock_accept(raw)
        conn.setblocking(True)
        await loop.run_in_executor(None, read_head, conn)
        await loop.sock_sendall(conn, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                                      b"Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n" + frame(1, b"too late", mask=False))
        sent("s2c", 1, "too late")
        await asyncio.sleep(0.2)
        conn.close()
    task = asyncio.create_task(raw_server())
    try:
        async with connect(uri(host, port, "/bad"), compression=None):
            pass
    except websockets.exceptions.InvalidHandshake as error:
        LOG["client_error"] = type(error).__name__
    await task
    raw.close()


def raw_upgrade_server(sock, keepalive_answers, extra_headers=""):
    """Answers plain requests, then a WebSocket upgrade; echoes text frames until close."""
    conn, _ = sock.accept()
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            buf += conn.recv(65536)
        head, _, buf = buf.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        if "upgrade" in headers:
            break
        body = keepalive_answers.pop(0)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    if headers["upgrade"].lower() == "h2c":
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
                     + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        recv_exactly(conn, 24 + 9, buf)
        conn.close()
        return
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Accept: {accept_for(headers['sec-websocket-key'])}\r\n{extra_headers}\r\n").encode())
    while True:
        buf = recv_exactly(conn, 2, buf)
        length = buf[1] & 0x7F
        buf = recv_exactly(conn, 6 + length, buf)
        opcode, rsv, key, payload = buf[0] & 0x0F, buf[0] & 0x70, buf[2:6], buf[6:6 + length]
        buf = buf[6 + length:]
        payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        if opcode == 8:
            conn.sendall(frame(8, payload, mask=False))
            break
        if opcode == 1:
            if not rsv:
                sent("s2c", 1, payload)
            conn.sendall(frame(1, payload, mask=False, rsv=rsv >> 4))
    conn.close()


async def with_raw_server(host, port, client, keepalive_answers=(), extra_headers=""):
    """Runs `client` (blocking) against raw_upgrade_server on its own thread."""
    sock = socket.create_server((host, port))
    loop = asyncio.get_running_loop()
    server = loop.run_in_executor(None, raw_upgrade_server, sock, list(keepalive_answers), extra_headers)
    await loop.run_in_executor(None, client)
    await server
    sock.close()


def close_raw(s):
    """Sends a masked close 1000, waits for the server's close, closes the socket."""
    s.sendall(frame(8, struct.pack("!H", 1000)))
    recv_exactly(s, 4)
    s.close()


async def keepalive(port, host):
    def client():
        s = socket.create_connection((host, port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        recv_exactly(s, 42)
        s.sendall(b"POST /data HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello=world")
        recv_exactly(s, 42)
        s.sendall(b"GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        head, rest = read_head(s)
        sent("c2s", 1, "after keep-alive")
        s.sendall(frame(1, b"after keep-alive"))
        recv_exactly(s, 18, rest)
        close_raw(s)
    await with_raw_server(host, port, client, [b"ok-1", b"ok-2"])


async def fragmented(port, host):
    """A raw client fragments messages with pings between the fragments; the server is websockets."""
    async with await lib_server(port, host, compression=None):
        def client():
            s = socket.create_connection((host, port))
            s.sendall(f"GET /frag HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {base64.b64encode(b'fragmented-test!').decode()}\r\n"
                      f"Sec-WebSocket-Version: 13\r\n\r\n".encode())
            head, rest = read_head(s)
            text = "fragmented ✓ text message".encode()
            # The check mark's three bytes are split across fragments: valid only as a whole message.
            cut1, cut2 = 12, 16
            s.sendall(frame(1, text[:cut1], fin=False) + frame(9, b"ping in between")
                      + frame(0, text[cut1:cut2], fin=False) + frame(0, text[cut2:], fin=False) + frame(0, b"", fin=True))
            sent("c2s", 1, text)
            data = bytes(range(256)) * 12
            s.sendall(frame(2, data[:1000], fin=False) + frame(9, b"") + frame(0, data[1000:2000], fin=False)
                      + frame(0, data[2000:], fin=True))
            sent("c2s", 2, data)
            s.sendall(frame(8, struct.pack("!H", 1000) + b"frag done"))
            recv_exactly(s, 1 << 16, rest)
            s.close()
        await asyncio.get_running_loop().run_in_executor(None, client)
        await asyncio.sleep(0.1)


async def h2c(port, host):
    def client():
        s = socket.create_connection((host, port))
        s.sendall(b"GET /h2 HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                  b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
        read_head(s)
        s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        recv_exactly(s, 1 << 16)
        s.close()
    await with_raw_server(host, port, client)


async def unknown_extension(port, host):
    """Both peers agree on x-webkit-deflate-frame, which compresses each frame on its own."""
    def client():
        import zlib
        s = socket.create_connection((host, port))
        s.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dW5rbm93bi1leHRlbnNpbw==\r\nSec-WebSocket-Version: 13\r\n"
                  b"Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n\r\n")
        head, rest = read_head(s)
        compressor = zlib.compressobj(wbits=-15)
        body = compressor.compress(b"per-frame compressed text") + compressor.flush(zlib.Z_SYNC_FLUSH)
        s.sendall(frame(1, body[:-4], rsv=4))
        recv_exactly(s, 2 + len(body) - 4, rest)
        close_raw(s)
    await with_raw_server(host, port, client, extra_headers="Sec-WebSocket-Extensions: x-webkit-deflate-frame\r\n")


def tls_contexts(keylog, version, ciphers=None, options=0):
    """A server context with a fresh self-signed certificate, and a client context that writes
    its NSS key log to `keylog` (None: no key log). `ciphers` forces a TLS 1.2 suite; TLS 1.3
    suites are forced by OPENSSL_CONF (record.sh sets it)."""
    import ssl, subprocess, tempfile
    directory = tempfile.mkdtemp()
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=wstap.test"], check=True, capture_output=True)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    for context in (server, client):
        context.minimum_version = context.maximum_version = version
        context.set_alpn_protocols(["http/1.1"])
        if ciphers:
            context.set_ciphers(ciphers)
        context.options |= options
    if keylog:
        client.keylog_filename = keylog
    return server, client


async def tls_conversation(port, host, version, ciphers=None, compression="deflate", options=0):
    """Text, binary and long messages both ways over wss://, the client writing the key log."""
    server, client = tls_contexts(KEYLOG, version, ciphers, options)
    async with await lib_server(port, host, ssl=server, compression=compression):
        async with connect(f"wss://{host}:{port}/secure", ssl=client, server_hostname="wstap.test",
                           compression=compression) as ws:
            for message in ["hello over TLS", bytes(range(256)) * 20, "long " * 2000]:
                sent("c2s", 1 if isinstance(message, str) else 2, message)
                await ws.send(message)
                await ws.recv()
            await ws.close(1000, "tls bye")


async def wss_tls13(port, host):
    import ssl
    await tls_conversation(port, host, ssl.TLSVersion.TLSv1_3)


async def wss_tls12_aes128(port, host):
    import ssl
    await tls_conversation(port, host, ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-GCM-SHA256", compression=None)


async def wss_tls12_aes256(port, host):
    import ssl
    await tls_conversation(port, host, ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES256-GCM-SHA384")


async def wss_tls12_chacha(port, host):
    import ssl
    await tls_conversation(port, host, ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-CHACHA20-POLY1305")


async def wss_tls12_cbc_sha(port, host):
    """AES-128-CBC with HMAC-SHA1; OpenSSL negotiates encrypt-then-MAC (RFC 7366)."""
    import ssl
    await tls_conversation(port, host, ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-SHA")


async def wss_tls12_cbc_sha384(port, host):
    """AES-256-CBC with HMAC-SHA384, MAC-then-encrypt (encrypt-then-MAC switched off: OpenSSL's
    SSL_OP_NO_ENCRYPT_THEN_MAC)."""
    import ssl
    await tls_conversation(port, host, ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES256-SHA384", options=1 << 19)


async def wss_chromium(port, host):
    """Headless Chromium opens a page over https and a wss:// WebSocket to a python `websockets`
    server, sends text, binary and a 70 KB text, and closes; Chromium writes the key log
    (SSLKEYLOGFILE). Its ClientHello is a browser's: GREASE, ALPN h2 and http/1.1, many groups."""
    import ssl, subprocess, tempfile
    from websockets.datastructures import Headers
    from websockets.http11 import Response
    server, _ = tls_contexts(None, ssl.TLSVersion.TLSv1_3)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    # The page's load event waits for /after, which is answered once the WebSocket has closed:
    # Chromium's --dump-dom exits only then.
    closed = asyncio.Event()
    page = (f"""<html><body><img src="/after"><script>
        const ws = new WebSocket('wss://{host}:{port}/browser');
        ws.binaryType = 'arraybuffer';
        ws.onopen = () => {{ ws.send('hello from chromium'); ws.send(new Uint8Array([1, 2, 3, 250]).buffer);
                             ws.send('x'.repeat(70000)); }};
        let answers = 0;
        ws.onmessage = () => {{ if (++answers == 3) ws.close(1000, 'browser done'); }};
        </script></body></html>""").encode()

    async def page_or_upgrade(connection, request):
        if request.path == "/":
            return Response(200, "OK", Headers([("Content-Type", "text/html"), ("Content-Length", str(len(page)))]), page)
        if request.path == "/after":
            await asyncio.wait_for(closed.wait(), 15)
            return Response(204, "No Content", Headers([("Content-Length", "0")]), b"")

    async def echo_logging(ws):
        async for message in ws:
            opcode = 1 if isinstance(message, str) else 2
            sent("c2s", opcode, message)
            sent("s2c", opcode, message)
            await ws.send(message)
        closed.set()

    async with await lib_server(port, host, handler=echo_logging, ssl=server, process_request=page_or_upgrade):
        profile = tempfile.mkdtemp()
        browser = await asyncio.create_subprocess_exec(
            "chromium", "--headless=new", "--no-sandbox", "--ignore-certificate-errors", "--disable-gpu",
            f"--user-data-dir={profile}", "--dump-dom", f"https://{host}:{port}/",
            env=dict(os.environ, SSLKEYLOGFILE=KEYLOG), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        await asyncio.wait_for(browser.wait(), 20)
        await asyncio.sleep(0.5)


async def tls_h2(port, host):
    """TLS whose ALPN selects h2 (WebSocket over HTTP/2 would be RFC 8441): the client sends the
    HTTP/2 connection preface and a SETTINGS frame, the server a SETTINGS frame. wstap names it
    and does not parse HTTP/2 as HTTP/1.1."""
    import ssl
    server, client = tls_contexts(KEYLOG, ssl.TLSVersion.TLSv1_3)
    server.set_alpn_protocols(["h2"])
    client.set_alpn_protocols(["h2"])
    settings = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])

    async def answer(reader, writer):
        await reader.readexactly(24 + 9)
        writer.write(settings)
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(answer, host, port, ssl=server)
    reader, writer = await asyncio.open_connection(host, port, ssl=client, server_hostname="wstap.test")
    LOG["alpn"] = writer.get_extra_info("ssl_object").selected_alpn_protocol()
    writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings)
    await writer.drain()
    await reader.read()
    writer.close()
    listener.close()


async def wss_missing_key(port, host):
    """Two wss connections; only the first writes its secrets to the key log. The second is
    shown as TLS that could not be decrypted, so its messages are not in this log."""
    import ssl
    server, client = tls_contexts(KEYLOG, ssl.TLSVersion.TLSv1_3)
    _, silent_client = tls_contexts(None, ssl.TLSVersion.TLSv1_3)
    async def echo_logging_decryptable(ws):
        async for message in ws:
            if message == "decryptable":
                sent("s2c", 1, message)
            await ws.send(message)

    async with await lib_server(port, host, handler=echo_logging_decryptable, ssl=server):
        for context, logged in ((client, True), (silent_client, False)):
            async with connect(f"wss://{host}:{port}/keys", ssl=context, server_hostname="wstap.test") as ws:
                if logged:
                    sent("c2s", 1, "decryptable")
                await ws.send("decryptable" if logged else "not decryptable")
                await ws.recv()
    LOG["connections_without_keys"] = 1


MARKUP = ["</script><script>document.title='PWNED'</script>",
          "<img src=x onerror=\"document.title='PWNED'\">",
          "<a href=\"javascript:document.title='PWNED'\">click me</a>",
          "\"'><svg onload=document.title='PWNED'>",
          "control \x00\x07\x1b[31m bytes and \u202e reversed",
          '{"user":"<b>bold</b>","list":[1,2,{"k":"</script>"}],"empty":{}}',
          "&lt;already escaped&gt; &amp; <!-- comment --> <style>body{display:none}</style>"]


async def html_markup(port, host):
    """Markup in every field a report shows (target, Host, a header, payloads): must stay text."""
    def client():
        s = socket.create_connection((host, port))
        s.sendall(b"GET /chat?q=<script>alert(1)</script>&x=\"'><img%20src=x> HTTP/1.1\r\n"
                  b"Host: evil.test\"><svg onload=alert(1)>\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                  b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                  b"X-Note: </script><script>document.title='PWNED'</script>\r\n\r\n")
        head, rest = read_head(s)
        for text in MARKUP:
            data = text.encode()
            sent("c2s", 1, data)
            s.sendall(frame(1, data))
            rest = recv_exactly(s, 2 + len(data), rest)[2 + len(data):]
        close_raw(s)
    await with_raw_server(host, port, client)


SCENARIOS = {f.__name__.replace("_", "-"): f for f in
             [text_echo, binary_sizes, ping_close_codes, subprotocol, deflate, rejected, bad_accept,
              keepalive, fragmented, h2c, deflate_no_context_client, deflate_no_context_server,
              deflate_window_bits, deflate_fragmented, unknown_extension, chat_stream,
              wss_tls13, wss_tls12_aes128, wss_tls12_aes256, wss_tls12_chacha, wss_tls12_cbc_sha,
              wss_tls12_cbc_sha384, wss_missing_key, wss_chromium, tls_h2, html_markup]}
# Where the TLS scenarios' client writes its key log: NAME.keys beside NAME.peers.json.
KEYLOG = None

if __name__ == "__main__":
    name, port, logfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    KEYLOG = logfile.replace(".peers.json", ".keys") if name.startswith(("wss-", "tls-")) else None
    if KEYLOG and os.path.exists(KEYLOG):
        os.remove(KEYLOG)
    host = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
    asyncio.run(asyncio.wait_for(SCENARIOS[name](port, host), 30))
    with open(logfile, "w") as f:
        json.dump(LOG, f, indent=1, sort_keys=True)
        f.write("\n")

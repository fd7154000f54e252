#!/usr/bin/env python3
"""Application protocols over WebSocket, spoken by their own libraries, for wstap's test captures.

usage: app_peers.py SCENARIO PORT LOGFILE

Scenarios (each runs a real server and client on 127.0.0.1:PORT):
  app-mqtt      amqtt broker (its own venv, /opt/amqtt-venv: it pins another websockets) and a
                paho-mqtt client over WebSocket: QoS 0/1/2, retain, unsubscribe, keep-alive pings
  app-stomp     RabbitMQ's web-stomp plugin and a stomp.py client: receipts, a subscription,
                messages, an ERROR for a bad destination
  app-socketio  python-socketio server (aiohttp) and client (websocket transport): events with acks,
                a binary event, a second namespace, a namespace that refuses (connect_error)
  app-graphql   strawberry-graphql (ASGI under hypercorn) and a gql client, graphql-transport-ws:
                a query, a resolver error, a validation error, a subscription to its end, one
                the client stops, ping/pong
  app-jsonrpc   jsonrpcserver behind a python websockets server (subprotocol jsonrpc) and
                jsonrpcclient requests: results, a notification, errors, a batch

LOGFILE gets {"app": [...]}: every application message as the libraries themselves logged or
handled it ({"dir", "type", key fields}), in order per direction. The golden tests compare wstap's
application messages with it.
"""
import asyncio, json, os, re, subprocess, sys, tempfile, time

APP = []


def log(direction, kind, **fields):
    APP.append({"dir": direction, "type": kind, **fields})


# ---- MQTT: paho-mqtt against amqtt ---------------------------------------------------------------
PAHO_SENT = re.compile(r"^(Sending|Received) (\w+)")


def mqtt(port):
    config = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    config.write(f"listeners:\n  default:\n    type: ws\n    bind: 127.0.0.1:{port}\n"
                 "plugins:\n  amqtt.plugins.authentication.AnonymousAuthPlugin:\n    allow_anonymous: true\n")
    config.close()
    broker = subprocess.Popen(["/opt/amqtt-venv/bin/amqtt", "-c", config.name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3)
    import paho.mqtt.client as paho
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="wstap-test", transport="websockets",
                         protocol=paho.MQTTv311)
    client.ws_set_options(path="/mqtt")

    def on_log(_client, _userdata, _level, text):
        found = PAHO_SENT.match(text)
        if not found:
            return
        direction = "c2s" if found.group(1) == "Sending" else "s2c"
        packet = found.group(2)
        fields = {}
        publish = re.search(r"\(d(\d), q(\d), r(\d), m(\d+)\), '(?:b')?([^']*)'?'", text)
        if packet == "PUBLISH" and publish:
            fields = {"qos": int(publish.group(2)), "topic": publish.group(5)}
            if fields["qos"] > 0:
                fields["packet_id"] = int(publish.group(4))
        mid = re.search(r"\(Mid: (\d+)\)|\(d\d, m(\d+)\)|, m(\d+)\)|Mid: (\d+)", text)
        if packet in ("PUBACK", "PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK") and mid:
            fields["packet_id"] = int(next(g for g in mid.groups() if g))
        log(direction, packet, **fields)

    client.on_log = on_log
    client.connect("127.0.0.1", port, keepalive=2)
    client.loop_start()
    time.sleep(0.5)
    client.subscribe("wstap/chat", qos=1)
    time.sleep(0.3)
    client.subscribe([("wstap/exact", 2), ("wstap/+/wild", 0)])
    time.sleep(0.3)
    for qos, topic, payload, retain in [(0, "wstap/chat", "hello at most once", False),
                                       (1, "wstap/chat", "hello at least once", False),
                                       (2, "wstap/exact", "hello exactly once", False),
                                       (1, "wstap/a/wild", bytes(range(256)), False),
                                       (1, "wstap/retained", "kept by the broker", True)]:
        client.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(3)
        time.sleep(0.3)
    client.unsubscribe("wstap/chat")
    time.sleep(0.3)
    client.publish("wstap/chat", "nobody listens", qos=1).wait_for_publish(3)
    time.sleep(4.5)  # keep-alive 2 s: PINGREQ and PINGRESP
    client.disconnect()
    time.sleep(0.5)
    client.loop_stop()
    broker.terminate()
    broker.wait()
    os.unlink(config.name)


# ---- STOMP: stomp.py against RabbitMQ web-stomp -------------------------------------------------
def stomp_scenario(port):
    base = tempfile.mkdtemp(prefix="wstap-rabbit-")
    with open(os.path.join(base, "rabbitmq.conf"), "w") as conf:
        conf.write(f"web_stomp.tcp.port = {port}\nweb_stomp.tcp.ip = 127.0.0.1\nlisteners.tcp.default = 127.0.0.1:{port + 5}\n"
                   "loopback_users = none\n")
    with open(os.path.join(base, "enabled_plugins"), "w") as plugins:
        plugins.write("[rabbitmq_web_stomp].\n")
    os.chmod(base, 0o777)  # the broker runs as the rabbitmq user
    env = dict(os.environ, RABBITMQ_CONFIG_FILE=os.path.join(base, "rabbitmq.conf"), RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(base, "enabled_plugins"),
               RABBITMQ_MNESIA_BASE=os.path.join(base, "mnesia"), RABBITMQ_LOG_BASE=base, RABBITMQ_NODENAME=f"wstap{port}@localhost",
               RABBITMQ_NODE_PORT=str(port + 5), RABBITMQ_DIST_PORT=str(port + 7))
    server = subprocess.Popen(["rabbitmq-server"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import socket
    for _ in range(120):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.5)
    time.sleep(1)
    import stomp

    class Listener(stomp.ConnectionListener):
        def on_send(self, frame):
            if frame.cmd:
                log("c2s", frame.cmd, **({"headers": {"destination": frame.headers["destination"]}} if "destination" in frame.headers else {}))

        def on_connected(self, frame):
            log("s2c", "CONNECTED")

        def on_message(self, frame):
            log("s2c", "MESSAGE", headers={"destination": frame.headers.get("destination")})

        def on_receipt(self, frame):
            log("s2c", "RECEIPT")

        def on_error(self, frame):
            log("s2c", "ERROR")

    connection = stomp.WSStompConnection([("127.0.0.1", port)], ws_path="/ws", heartbeats=(0, 0), vhost="/")
    connection.set_listener("log", Listener())
    connection.connect("guest", "guest", wait=True)
    connection.subscribe("/queue/wstap", id="sub-1", ack="auto", headers={"receipt": "subscribed"})
    time.sleep(0.5)
    connection.send("/queue/wstap", "hello over STOMP", headers={"receipt": "sent-1"})
    time.sleep(0.3)
    connection.send("/queue/wstap", "line one\nline two: with a colon", content_type="text/plain")
    time.sleep(0.3)
    connection.send("/queue/wstap", "x" * 3000)
    time.sleep(0.5)
    connection.unsubscribe(id="sub-1", headers={"receipt": "unsubscribed"})
    time.sleep(0.3)
    connection.send("/nosuch/destination", "refused")  # the broker answers with ERROR and closes
    time.sleep(1)
    try:
        connection.disconnect()
    except Exception:
        pass
    time.sleep(0.5)
    subprocess.run(["rabbitmqctl", "-n", f"wstap{port}@localhost", "stop"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()


# ---- Socket.IO: python-socketio server and client -----------------------------------------------
async def socketio_scenario(port):
    import socketio
    from aiohttp import web

    server = socketio.AsyncServer(async_mode="aiohttp")
    app = web.Application()
    server.attach(app)

    @server.event
    async def chat(sid, data):
        await server.emit("chat", {"echo": data}, to=sid)
        log("s2c", "event", namespace="/", event="chat")
        return "ok"

    @server.on("upload")
    async def upload(sid, data):
        return len(data)

    @server.on("hello", namespace="/admin")
    async def admin_hello(sid, data):
        return {"admin": True}

    @server.on("connect", namespace="/private")
    async def refuse(sid, environ, auth):
        raise socketio.exceptions.ConnectionRefusedError("members only")

    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()

    client = socketio.AsyncClient()
    received = asyncio.Queue()
    client.on("chat", lambda data: received.put_nowait(data))
    await client.connect(f"http://127.0.0.1:{port}", transports=["websocket"], namespaces=["/", "/admin"])
    # The connect packets of both namespaces and their answers.
    log("c2s", "connect", namespace="/")
    log("c2s", "connect", namespace="/admin")
    log("s2c", "connect", namespace="/")
    log("s2c", "connect", namespace="/admin")
    await asyncio.sleep(0.3)
    answer = await client.call("chat", "hello socket.io")
    log("c2s", "event", namespace="/", event="chat")
    log("s2c", "ack", namespace="/")
    await received.get()
    await asyncio.sleep(0.2)
    await client.call("upload", bytes(range(200)) * 3)
    log("c2s", "binary_event", namespace="/", event="upload")
    log("s2c", "ack", namespace="/")
    await client.call("hello", {"who": "admin"}, namespace="/admin")
    log("c2s", "event", namespace="/admin", event="hello")
    log("s2c", "ack", namespace="/admin")
    await asyncio.sleep(0.2)
    await client.disconnect()
    await asyncio.sleep(0.3)
    # A namespace that refuses (a second connection): connect, then connect_error.
    refused = socketio.AsyncClient()
    try:
        await refused.connect(f"http://127.0.0.1:{port}", transports=["websocket"], namespaces=["/private"])
    except socketio.exceptions.ConnectionError:
        pass
    log("c2s", "connect", namespace="/private")
    log("s2c", "connect_error", namespace="/private")
    await asyncio.sleep(0.3)
    await refused.disconnect()
    await asyncio.sleep(0.3)
    await runner.cleanup()
    assert answer == "ok"


# ---- JSON-RPC 2.0: jsonrpcserver and jsonrpcclient over python websockets ------------------------
MESSAGES = []


def sent(direction, text):
    import hashlib
    data = text.encode()
    MESSAGES.append({"dir": direction, "opcode": 1, "length": len(data), "sha256": hashlib.sha256(data).hexdigest()})


async def jsonrpc_scenario(port):
    import jsonrpcclient
    from jsonrpcserver import Error, InvalidParams, Result, Success, async_dispatch, method
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    @method
    async def add(a, b) -> Result:
        return Success(a + b)

    @method(name="log")
    async def log_text(text) -> Result:
        return Success(None)

    @method
    async def divide(a, b) -> Result:
        if b == 0:
            return Error(1001, "division by zero", {"a": a})
        return Success(a / b)

    async def handler(websocket):
        async for request in websocket:
            response = await async_dispatch(request)
            if response:
                sent("s2c", response)
                answer = json.loads(response)
                if isinstance(answer, list):
                    log("s2c", "batch")
                else:
                    log("s2c", "error" if "error" in answer else "result", id=answer["id"])
                await websocket.send(response)

    async with serve(handler, "127.0.0.1", port, subprotocols=["jsonrpc"]):
        async with connect(f"ws://127.0.0.1:{port}/rpc", subprotocols=["jsonrpc"]) as websocket:
            async def call(text, kind, **fields):
                sent("c2s", text)
                log("c2s", kind, **fields)
                await websocket.send(text)
                await asyncio.sleep(0.1)

            await call(jsonrpcclient.request_json("add", params={"a": 2, "b": 3}, id=1), "request", method="add", id=1)
            print(await websocket.recv())
            await call(jsonrpcclient.notification_json("log", params={"text": "hello"}), "notification", method="log")
            await call(jsonrpcclient.request_json("divide", params=[1, 0], id="div-1"), "request", method="divide", id="div-1")
            print(await websocket.recv())
            await call(jsonrpcclient.request_json("nosuch", id=3), "request", method="nosuch", id=3)
            print(await websocket.recv())
            await call(jsonrpcclient.request_json("add", params={"a": 1}, id=4), "request", method="add", id=4)
            print(await websocket.recv())
            batch = json.dumps([jsonrpcclient.request("add", params={"a": 1, "b": 1}, id=5),
                                jsonrpcclient.request("divide", params=[6, 3], id=6),
                                jsonrpcclient.notification("log", params={"text": "in a batch"})])
            await call(batch, "batch")
            print(await websocket.recv())
            await asyncio.sleep(0.2)


# ---- GraphQL: strawberry-graphql under hypercorn, gql's websockets transport ---------------------
async def graphql_scenario(port):
    import typing
    import strawberry
    from gql import Client, gql
    from gql.transport.websockets import WebsocketsTransport
    from hypercorn.asyncio import serve as hypercorn_serve
    from hypercorn.config import Config
    from strawberry.asgi import GraphQL

    @strawberry.type
    class Query:
        @strawberry.field
        def hello(self, name: str) -> str:
            return f"Hello {name}"

        @strawberry.field
        def broken(self) -> str:
            raise ValueError("resolver failed on purpose")

    @strawberry.type
    class Subscription:
        @strawberry.subscription
        async def count(self, to: int) -> typing.AsyncGenerator[int, None]:
            for number in range(to):
                yield number
                await asyncio.sleep(0.05)

    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    shutdown = asyncio.Event()
    server = asyncio.create_task(hypercorn_serve(GraphQL(strawberry.Schema(query=Query, subscription=Subscription)), config,
                                                 shutdown_trigger=shutdown.wait))
    await asyncio.sleep(1)
    transport = WebsocketsTransport(url=f"ws://127.0.0.1:{port}/graphql", subprotocols=[WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL],
                                    ping_interval=None)
    async with Client(transport=transport, fetch_schema_from_transport=False) as session:
        log("c2s", "connection_init")
        log("s2c", "connection_ack")
        await session.execute(gql("query Hello($name: String!) { hello(name: $name) }"), variable_values={"name": "wstap"})
        log("c2s", "subscribe", id="1")
        log("s2c", "next", id="1")
        log("s2c", "complete", id="1")
        try:
            await session.execute(gql("query Broken { broken }"))
        except Exception:
            pass
        log("c2s", "subscribe", id="2")
        log("s2c", "next", id="2")
        log("s2c", "complete", id="2")
        try:
            await session.execute(gql("query Nope { nosuchfield }"))
        except Exception:
            pass
        log("c2s", "subscribe", id="3")
        log("s2c", "error", id="3")
        numbers = [result async for result in session.subscribe(gql("subscription Count { count(to: 3) }"))]
        assert len(numbers) == 3, numbers
        log("c2s", "subscribe", id="4")
        for _ in numbers:
            log("s2c", "next", id="4")
        log("s2c", "complete", id="4")
        seen = 0
        async for _ in session.subscribe(gql("subscription Long { count(to: 100) }")):
            seen += 1
            log("s2c", "next", id="5")
            if seen == 2:
                break
        log("c2s", "subscribe", id="5")
        log("c2s", "complete", id="5")
        await asyncio.sleep(0.3)
    await asyncio.sleep(0.3)
    shutdown.set()
    await server


def main():
    scenario, port, logfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if scenario == "app-mqtt":
        mqtt(port)
    elif scenario == "app-stomp":
        stomp_scenario(port)
    elif scenario == "app-socketio":
        asyncio.run(socketio_scenario(port))
    elif scenario == "app-graphql":
        asyncio.run(graphql_scenario(port))
    elif scenario == "app-jsonrpc":
        asyncio.run(jsonrpc_scenario(port))
    else:
        sys.exit(f"unknown scenario {scenario}")
    # Per direction in the order each side wrote or read them.
    with open(logfile, "w") as out:
        json.dump({"app": APP, **({"messages": MESSAGES, "subprotocol": "jsonrpc"} if MESSAGES else {})}, out, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main()

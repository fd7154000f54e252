import Testing
import WSTapCore
@testable import WSTapApplication

/// The JSON scanner and the JSON-based message decoders on hand-built messages.
struct JSONScannerTests {
    static func validate(_ text: String) -> JSONSyntaxError? {
        Array(text.utf8).withUnsafeBytes { JSONScanner.validate($0) }
    }

    @Test func validJSONIsValid() {
        for text in ["{}", "[]", " {\"a\": [1, -2.5e+3, true, false, null, \"x\\u00e9\\n\"], \"b\": {}} ", "\"s\"", "0", "[[[]]]"] {
            #expect(Self.validate(text) == nil, "\(text)")
        }
    }

    /// Where the text stops being JSON, and why.
    @Test func invalidJSONSaysWhere() {
        #expect(Self.validate("{\"a\": 1,}")?.offset == 8)
        #expect(Self.validate("{\"a\" 1}")?.reason == "no ':' after a member's name")
        #expect(Self.validate("[1, 2")?.offset == 5)
        #expect(Self.validate("[01]")?.offset == 2)
        #expect(Self.validate("{\"a\": tru}")?.reason == "not 'true'")
        #expect(Self.validate("\"\\q\"") != nil)
        #expect(Self.validate("{} {}")?.offset == 3)
        #expect(Self.validate("")?.offset == 0)
    }

    /// Nesting is bounded without recursion: deeper than the bound is an error, never a crash.
    @Test func deepNestingIsAnErrorNotACrash() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(Self.validate(deep)?.reason == "nested deeper than 512 levels")
        let fine = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(Self.validate(fine) == nil)
    }

    @Test func membersAndStrings() {
        let text = Array("{\"type\":\"next\",\"id\":\"7\",\"payload\":{\"data\":{\"x\":\"\\ud83d\\ude00\"}}}".utf8)
        text.withUnsafeBytes { bytes in
            guard case .success(let members?) = JSONScanner.members(bytes) else { return #expect(Bool(false)) }
            #expect(members.map(\.key) == ["type", "id", "payload"])
            #expect(members.map(\.kind) == [.string, .string, .object])
            #expect(JSONScanner.string(bytes, members[0].range) == "next")
            let payload = UnsafeRawBufferPointer(rebasing: bytes[members[2].range])
            #expect(String(decoding: payload, as: UTF8.self) == "{\"data\":{\"x\":\"\\ud83d\\ude00\"}}")
        }
        Array("\"\\ud83d\\ude00 \\\"q\\\"\"".utf8).withUnsafeBytes { #expect(JSONScanner.string($0, 0..<$0.count) == "😀 \"q\"") }
    }
}

/// Feeds messages to a decoder and keeps what it says: `type fields` lines and findings.
func decode(_ decoder: any MessageDecoder, _ messages: [(StreamDirection, String)]) -> [String] {
    var lines: [String] = []
    var indices = [UInt64](repeating: 0, count: 2)
    for (direction, text) in messages {
        let index = indices[direction.rawValue]
        indices[direction.rawValue] += 1
        Array(text.utf8).withUnsafeBytes { payload in
            decoder.receive(ApplicationInput(
                direction: direction, index: index, isText: true, payload: payload, isComplete: true, time: .zero)) { output in
                switch output {
                case .message(let message):
                    let fields = message.fields.map { field in "\(field.name)=\(describe(field.value))" }
                    lines.append(([message.direction.label, message.type] + fields).joined(separator: " "))
                case .finding(let finding, let direction):
                    lines.append("\(direction.label) !! \(finding.code): \(finding.detail)")
                }
            }
        }
    }
    return lines
}

func describe(_ value: ApplicationValue) -> String {
    switch value {
    case .null: "null"
    case .bool(let flag): String(flag)
    case .integer(let number): String(number)
    case .string(let text): text
    case .bytes(let bytes): "\(bytes.count) bytes"
    case .json(let text): String(decoding: text, as: UTF8.self)
    case .list(let values): "[" + values.map(describe).joined(separator: ", ") + "]"
    case .object(let fields): "{" + fields.map { "\($0.name)=\(describe($0.value))" }.joined(separator: " ") + "}"
    }
}

struct GraphQLDecoderTests {
    @Test func transportWSTypesIdsOperationsAndErrors() {
        let lines = decode(GraphQLDecoder(.transportWS), [
            (.clientToServer, #"{"type":"connection_init"}"#),
            (.serverToClient, #"{"type":"connection_ack"}"#),
            (.clientToServer, #"{"type":"subscribe","id":"1","payload":{"query":"subscription Tick { ticker }"}}"#),
            (.serverToClient, #"{"type":"next","id":"1","payload":{"data":null,"errors":[{"message":"boom"}]}}"#),
            (.serverToClient, #"{"id":"2","type":"error","payload":[{"message":"Cannot query field"}]}"#),
            (.serverToClient, #"{"type":"complete","id":"1"}"#),
            (.clientToServer, #"{"type":"start"}"#),
            (.clientToServer, #"{"type":"next", "id": }"#),
        ])
        #expect(lines == [
            "c2s connection_init", "s2c connection_ack",
            #"c2s subscribe id=1 operation=Tick payload={"query":"subscription Tick { ticker }"}"#,
            #"s2c next id=1 operation=Tick payload={"data":null,"errors":[{"message":"boom"}]}"#,
            "s2c !! graphql-error: next for operation 1 (Tick): boom",
            #"s2c error id=2 payload=[{"message":"Cannot query field"}]"#,
            "s2c !! graphql-error: error for operation 2: Cannot query field",
            "s2c complete id=1 operation=Tick",
            "c2s !! app-malformed: graphql-transport-ws message 2: unknown type \"start\"", "c2s start",
            "c2s !! app-invalid-json: graphql-transport-ws message 3 is not JSON: invalid at byte 22 ('}' cannot start a value)",
        ])
    }

    @Test func operationNames() {
        #expect(GraphQLDecoder.operationName("query Hello($n: String!) { hello }") == "Hello")
        #expect(GraphQLDecoder.operationName("subscription {\n count }") == nil)
        #expect(GraphQLDecoder.operationName("{ fail }") == nil)
    }
}

struct JSONRPCDecoderTests {
    /// Requests, notifications, results and errors, paired by id across directions; a batch is
    /// one message holding its items.
    @Test func callsAndResponsesArePaired() {
        let lines = decode(JSONRPCDecoder(), [
            (.clientToServer, #"{"jsonrpc":"2.0","method":"sum","params":[1,2],"id":1}"#),
            (.clientToServer, #"{"jsonrpc":"2.0","method":"log","params":["x"]}"#),
            (.serverToClient, #"{"jsonrpc":"2.0","result":3,"id":1}"#),
            (.clientToServer, #"{"jsonrpc":"2.0","method":"nope","id":"a"}"#),
            (.serverToClient, #"{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found"},"id":"a"}"#),
            (.clientToServer, #"[{"jsonrpc":"2.0","method":"a","id":7},{"jsonrpc":"2.0","method":"b"}]"#),
            (.serverToClient, #"[{"jsonrpc":"2.0","result":1,"id":7}]"#),
            (.serverToClient, #"{"jsonrpc":"2.0","id":9}"#),
        ])
        #expect(lines == [
            "c2s request method=sum jsonrpc=2.0 id=1 params=[1,2]",
            #"c2s notification method=log jsonrpc=2.0 params=["x"]"#,
            "s2c result method=sum jsonrpc=2.0 id=1 result=3",
            #"c2s request method=nope jsonrpc=2.0 id="a""#,
            #"s2c !! jsonrpc-error: error -32601 Method not found (method nope, id "a")"#,
            #"s2c error method=nope jsonrpc=2.0 id="a" code=-32601 message=Method not found"#,
            "c2s batch items=[{type=request method=a jsonrpc=2.0 id=7}, {type=notification method=b jsonrpc=2.0}]",
            "s2c batch items=[{type=result method=a jsonrpc=2.0 id=7 result=1}]",
            "s2c !! app-malformed: jsonrpc message 3: neither a call (method) nor a response (result or error)",
        ])
    }
}

struct PlainJSONDecoderTests {
    @Test func textMessagesAreCheckedAsJSON() {
        let lines = decode(PlainJSONDecoder(), [(.clientToServer, "{\"a\":1}"), (.serverToClient, "{\"a\":1")])
        #expect(lines == ["c2s object", "s2c !! app-invalid-json: json message 0 is not JSON: invalid at byte 6 (the text ends inside an object)"])
    }
}

struct SocketIODecoderTests {
    /// Engine.IO packets, Socket.IO packets inside message packets (namespace, ack id, event name,
    /// data), and a binary event completed by the binary message that follows it.
    @Test func engineAndSocketPackets() {
        let decoder = SocketIODecoder()
        var lines: [String] = []
        let messages: [(StreamDirection, Bool, [UInt8])] = [
            (.serverToClient, true, Array(#"0{"sid":"abc","pingInterval":25000}"#.utf8)),
            (.clientToServer, true, Array("40/chat,".utf8)),
            (.clientToServer, true, Array(#"42/chat,7["message",{"text":"hi"}]"#.utf8)),
            (.serverToClient, true, Array(#"43/chat,7["ok"]"#.utf8)),
            (.serverToClient, true, Array("2".utf8)),
            (.clientToServer, true, Array("3".utf8)),
            (.clientToServer, true, Array(#"451-["upload",{"_placeholder":true,"num":0}]"#.utf8)),
            (.clientToServer, false, [1, 2, 3, 4]),
            (.serverToClient, true, Array(#"44/admin,{"message":"Not authorized"}"#.utf8)),
        ]
        var indices = [UInt64](repeating: 0, count: 2)
        for (direction, isText, bytes) in messages {
            let index = indices[direction.rawValue]
            indices[direction.rawValue] += 1
            bytes.withUnsafeBytes { payload in
                decoder.receive(ApplicationInput(
                    direction: direction, index: index, isText: isText, payload: payload, isComplete: true, time: .zero)) { output in
                    switch output {
                    case .message(let message):
                        let fields = message.fields.map { "\($0.name)=\(describe($0.value))" }
                        lines.append(([message.direction.label, message.protocolName, message.type] + fields).joined(separator: " ")
                            + " \(Array(message.messages))")
                    case .finding(let finding, let direction):
                        lines.append("\(direction.label) !! \(finding.code): \(finding.detail)")
                    }
                }
            }
        }
        #expect(lines == [
            #"s2c engine.io open data={"sid":"abc","pingInterval":25000} [0]"#,
            "c2s engine.io message [0]", "c2s socket.io connect namespace=/chat [0]",
            "c2s engine.io message [1]",
            #"c2s socket.io event namespace=/chat id=7 event=message data=["message",{"text":"hi"}] [1]"#,
            "s2c engine.io message [1]", #"s2c socket.io ack namespace=/chat id=7 data=["ok"] [1]"#,
            "s2c engine.io ping [2]", "c2s engine.io pong [2]",
            "c2s engine.io message [3]",
            #"c2s socket.io binary_event namespace=/ event=upload data=["upload",{"_placeholder":true,"num":0}] attachments=[4] [3, 4]"#,
            "s2c engine.io message [3]",
            "s2c !! socketio-connect-error: connection to namespace /admin refused: Not authorized",
            #"s2c socket.io connect_error namespace=/admin data={"message":"Not authorized"} [3]"#,
        ])
    }
}

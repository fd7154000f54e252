import Testing
import WSTapCore
@testable import WSTapApplication

/// Feeds whole messages (text or binary) to a decoder: `dir type fields [messages]` lines and findings.
func feed(_ decoder: any MessageDecoder, _ messages: [(StreamDirection, [UInt8], text: Bool)], finish: Bool = false) -> [String] {
    var lines: [String] = []
    var indices = [UInt64](repeating: 0, count: 2)
    let record = { (output: ApplicationOutput) in
        switch output {
        case .message(let message):
            let fields = message.fields.map { "\($0.name)=\(describe($0.value))" }
            lines.append(([message.direction.label, message.type] + fields + ["\(Array(message.messages))"]).joined(separator: " "))
        case .finding(let finding, let direction):
            lines.append("\(direction.label) !! \(finding.code): \(finding.detail)")
        }
    }
    for (direction, bytes, text) in messages {
        let index = indices[direction.rawValue]
        indices[direction.rawValue] += 1
        bytes.withUnsafeBytes { payload in
            decoder.receive(
                ApplicationInput(direction: direction, index: index, isText: text, payload: payload, isComplete: true, time: .zero),
                emit: record)
        }
    }
    if finish { decoder.finish(at: .zero, emit: record) }
    return lines
}

func stomp(_ direction: StreamDirection, _ text: String) -> (StreamDirection, [UInt8], text: Bool) {
    (direction, Array(text.utf8), true)
}

struct STOMPDecoderTests {
    @Test func framesHeadersBodiesAndReceipts() {
        let lines = feed(STOMPDecoder(version: .v1_2), [
            stomp(.clientToServer, "CONNECT\naccept-version:1.2\nhost:a\\b\n\n\0"),
            stomp(.serverToClient, "CONNECTED\nversion:1.2\n\n\0\n"),
            stomp(.clientToServer, "SEND\ndestination:/queue/a\\cb\nreceipt:r1\ncontent-length:5\n\nhe\0lo\0"),
            stomp(.serverToClient, "RECEIPT\nreceipt-id:r1\n\n\0MESSAGE\r\ndestination:/queue/a:b\r\nx:1\r\nx:2\r\n\r\nbody\0"),
            stomp(.serverToClient, "\n"),
        ])
        #expect(lines == [
            "c2s CONNECT headers={accept-version=1.2 host=a\\b} [0]",
            "s2c CONNECTED headers={version=1.2} [0]",
            "c2s SEND headers={destination=/queue/a:b receipt=r1 content-length=5} body=he\0lo [1]",
            "s2c RECEIPT headers={receipt-id=r1} answers_receipt=r1 [1]",
            "s2c MESSAGE headers={destination=/queue/a:b x=1} repeated_headers=[[x, 2]] body=body [1]",
            "s2c heartbeat [2]",
        ])
    }

    /// A frame may span messages; one message may hold several.
    @Test func aFrameAcrossMessages() {
        let lines = feed(STOMPDecoder(version: .v1_1), [
            stomp(.clientToServer, "SEND\ndestination:/t\n\nfirst half, "),
            stomp(.clientToServer, "second half\0SEND\ndestination:/t\n"),
            stomp(.clientToServer, "\n\0"),
        ])
        #expect(lines == [
            "c2s SEND headers={destination=/t} body=first half, second half [0, 1]",
            "c2s SEND headers={destination=/t} [1, 2]",
        ])
    }

    @Test func errorsAndMalformedInput() {
        let lines = feed(STOMPDecoder(version: .v1_2), [
            stomp(.serverToClient, "ERROR\nmessage:Bad CONNECT\n\nno access\0"),
            stomp(.clientToServer, "HELLO\n\n\0"),
            stomp(.clientToServer, "SEND\ndestination:/a\\q\n\n\0"),
            stomp(.clientToServer, "SEND\ncontent-length:x\n\n\0"),
            stomp(.clientToServer, "SEND\nno colon\n\n\0"),
            stomp(.clientToServer, "SEND\ndestination:/a\n\ncut"),
        ], finish: true)
        #expect(lines == [
            "s2c !! stomp-error: STOMP ERROR: Bad CONNECT",
            "s2c ERROR headers={message=Bad CONNECT} body=no access [0]",
            "c2s !! app-malformed: stomp message 0: an unknown command \"HELLO\"",
            "c2s !! app-malformed: stomp message 1: an undefined escape sequence in a SEND header",
            "c2s !! app-malformed: stomp message 2: content-length \"x\" is not a number",
            "c2s !! app-malformed: stomp message 3: a header line without a colon in a SEND frame",
            "c2s !! app-malformed: stomp: the stream ended inside a frame without its NUL (24 bytes held)",
        ])
    }

    /// STOMP 1.0 has no escapes; a long body without NUL is searched once per message, not from its start.
    @Test func version10KeepsBackslashesAndLongBodiesStayLinear() {
        let lines = feed(STOMPDecoder(version: .v1_0), [stomp(.clientToServer, "SEND\ndestination:/a\\q\n\nx\0")])
        #expect(lines == ["c2s SEND headers={destination=/a\\q} body=x [0]"])
        var messages = [stomp(.clientToServer, "SEND\ndestination:/big\n\n")]
        messages += Array(repeating: stomp(.clientToServer, String(repeating: "y", count: 1000)), count: 2000)
        messages.append(stomp(.clientToServer, "\0"))
        let big = feed(STOMPDecoder(version: .v1_2), messages)
        #expect(big.count == 1)
        #expect(big.first?.hasPrefix("c2s SEND headers={destination=/big} body=") == true)
    }
}

struct MQTTDecoderTests {
    static func binary(_ direction: StreamDirection, _ bytes: [UInt8]) -> (StreamDirection, [UInt8], text: Bool) {
        (direction, bytes, false)
    }

    static let connect311: [UInt8] = [0x10, 20, 0, 4] + Array("MQTT".utf8) + [4, 0xC2, 0, 60, 0, 2] + Array("id".utf8)
        + [0, 1, UInt8(ascii: "u"), 0, 1, UInt8(ascii: "p")]

    @Test func packetsOfMQTT311() {
        let publish: [UInt8] = [0x33, 9, 0, 3] + Array("a/b".utf8) + [0, 7] + Array("hi".utf8)
        let lines = feed(MQTTDecoder(), [
            Self.binary(.clientToServer, Self.connect311),
            Self.binary(.serverToClient, [0x20, 2, 0, 0]),
            // A PUBLISH cut over two messages, then a PUBACK and PINGREQ in one.
            Self.binary(.clientToServer, Array(publish[..<5])),
            Self.binary(.clientToServer, Array(publish[5...]) + [0x82, 6, 0, 9, 0, 1, UInt8(ascii: "t"), 1]),
            Self.binary(.serverToClient, [0x40, 2, 0, 7, 0x90, 3, 0, 9, 0x80, 0xD0, 0]),
            Self.binary(.serverToClient, [0x20, 2, 0, 5]),
        ])
        #expect(lines == [
            "c2s CONNECT protocol_name=MQTT protocol_level=4 clean_session=true keep_alive=60 client_id=id username=u password=p [0]",
            "s2c CONNACK session_present=false return_code=0 return_name=accepted [0]",
            "c2s PUBLISH topic=a/b qos=1 retain=true dup=false packet_id=7 payload=hi [1, 2]",
            "c2s SUBSCRIBE packet_id=9 topics=[{topic=t qos=1}] [2]",
            "s2c PUBACK packet_id=7 [1]",
            "s2c !! mqtt-error: SUBACK refused: 128 failure",
            "s2c SUBACK packet_id=9 reason_codes=[128] [1]",
            "s2c PINGRESP [1]",
            "s2c !! mqtt-refused: CONNACK refused the connection: 5 not authorized",
            "s2c CONNACK session_present=false return_code=5 return_name=not authorized [2]",
        ])
    }

    /// MQTT 5: properties, reason codes, and a topic alias set by one PUBLISH and used by the next.
    @Test func propertiesReasonCodesAndTopicAliases() {
        let connect5: [UInt8] = [0x10, 13, 0, 4] + Array("MQTT".utf8) + [5, 2, 0, 30, 0, 0, 0]
        let aliased: [UInt8] = [0x30, 10, 0, 3] + Array("a/b".utf8) + [3, 0x23, 0, 1] + [UInt8(ascii: "x")]
        let byAlias: [UInt8] = [0x30, 7, 0, 0, 3, 0x23, 0, 1, UInt8(ascii: "y")]
        let userProperty: [UInt8] = [0x26, 0, 1, UInt8(ascii: "k"), 0, 1, UInt8(ascii: "v")]
        let connack: [UInt8] = [0x20, UInt8(3 + userProperty.count), 0, 0x87, UInt8(userProperty.count)] + userProperty
        let lines = feed(MQTTDecoder(), [
            Self.binary(.clientToServer, connect5), Self.binary(.clientToServer, aliased), Self.binary(.clientToServer, byAlias),
            Self.binary(.clientToServer, [0x30, 5, 0, 0, 2, 0x23, 9]),
            Self.binary(.serverToClient, connack),
        ])
        #expect(lines == [
            "c2s CONNECT protocol_name=MQTT protocol_level=5 clean_start=true keep_alive=30 client_id= [0]",
            "c2s PUBLISH topic=a/b qos=0 retain=false dup=false properties={topic_alias=1} payload=x [1]",
            "c2s PUBLISH topic=a/b qos=0 retain=false dup=false properties={topic_alias=1} payload=y [2]",
            "c2s !! app-malformed: mqtt message 3: a PUBLISH packet ends early",
            "s2c !! mqtt-refused: CONNACK refused the connection: 135 not authorized",
            "s2c CONNACK session_present=false reason_code=135 reason=not authorized properties={user_properties=[[k, v]]} [0]",
        ])
    }

    @Test func malformedAndOverLongPackets() {
        var huge: [UInt8] = [0x30, 0xFF, 0xFF, 0xFF, 0x7F]  // 268,435,455 bytes claimed
        huge += [0, 1, UInt8(ascii: "t")]
        let lines = feed(MQTTDecoder(), [
            Self.binary(.clientToServer, [0x00, 0]),
            Self.binary(.clientToServer, [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 1]),
            Self.binary(.serverToClient, huge),
            Self.binary(.serverToClient, [0x30, 3]),
        ], finish: true)
        #expect(lines == [
            "c2s !! app-malformed: mqtt message 0: packet type 0 is reserved",
            "c2s !! app-malformed: mqtt message 1: a Remaining Length longer than 4 bytes",
            "s2c !! app-malformed: mqtt message 0: a PUBLISH packet of 268435455 bytes, over the 16 MiB this tool keeps: skipped",
        ])
    }

    @Test func signaturesRecogniseFirstMessages() {
        func sniff(_ probe: (ApplicationInput) -> Bool, _ bytes: [UInt8], text: Bool) -> Bool {
            bytes.withUnsafeBytes {
                probe(ApplicationInput(direction: .clientToServer, index: 0, isText: text, payload: $0, isComplete: true, time: .zero))
            }
        }
        #expect(sniff(ApplicationSignatures.mqttConnect, Self.connect311, text: false))
        #expect(!sniff(ApplicationSignatures.mqttConnect, Array("MQTT hello".utf8), text: false))
        #expect(sniff(ApplicationSignatures.stompConnect, Array("CONNECT\nhost:a\n\n\0".utf8), text: true))
        #expect(!sniff(ApplicationSignatures.stompConnect, Array("CONNECTING...".utf8), text: true))
        #expect(sniff(ApplicationSignatures.engineIOOpen, Array(#"0{"sid":"x","pingInterval":25000}"#.utf8), text: true))
        #expect(sniff(ApplicationSignatures.jsonRPC, Array(#"[{"jsonrpc":"2.0","method":"a","id":1}]"#.utf8), text: true))
        #expect(!sniff(ApplicationSignatures.jsonRPC, Array(#"{"t":1,"m":"chat"}"#.utf8), text: true))
        #expect(sniff(ApplicationSignatures.graphQLTransportInit, Array(#"{"type":"connection_init"}"#.utf8), text: true))
    }
}

import WSTapCore

/// The handshake messages of both directions, put together from handshake records (a message may
/// span records, a record hold several: RFC 8446 §4), and the hellos read into values. It knows
/// nothing of keys: the decoder decides what each message means for decryption.
///
/// Linear: each direction's handshake bytes are appended once and messages taken off the front;
/// a message is at most 256 KiB.
struct TLSHandshakeReader {
    static let maxMessageLength = Int.kibibytes(256)

    /// What the ClientHello says (RFC 8446 §4.1.2).
    struct ClientHello {
        var random: [UInt8]
        var serverName: String?
        /// Nil when the ClientHello has no ALPN extension.
        var alpnOffered: [String]?
        /// The client offered 0-RTT data (`early_data`, RFC 8446 §4.2.10).
        var earlyDataOffered = false
    }

    /// What the ServerHello says (RFC 8446 §4.1.3), with the version `supported_versions` selected.
    struct ServerHello {
        var random: [UInt8]
        var version: UInt16
        var cipherSuite: UInt16
        /// The server accepted encrypt_then_mac (RFC 7366).
        var encryptThenMAC = false
        /// Nil when the ServerHello has no ALPN extension; else what it selected (nil if nothing readable).
        var alpn: String??
    }

    enum Message {
        case clientHello(ClientHello)
        case serverHello(ServerHello)
        /// A ServerHello that is a HelloRetryRequest: a second ClientHello and the real ServerHello follow.
        case helloRetryRequest
        /// TLS 1.3's EncryptedExtensions: where the server's ALPN choice is (as in `ServerHello.alpn`).
        case encryptedExtensions(alpn: String??)
        case finished
        case keyUpdate
        /// A message of no interest here, or a hello too short to read.
        case other
    }

    private var buffers = DirectionPair<[UInt8]>([])

    /// Adds a handshake record's plaintext; returns the messages it completes, in order, and a
    /// description of the bytes if a message claims more than `maxMessageLength`.
    mutating func add(_ plaintext: [UInt8], direction: StreamDirection) -> (messages: [Message], malformed: String?) {
        let index = direction.rawValue
        buffers[index] += plaintext
        var messages: [Message] = []
        var offset = 0
        let buffer = buffers[index]
        while buffer.count - offset >= 4 {
            let type = TLSHandshakeType(rawValue: buffer[offset])
            let length = Int(buffer[offset + 1]) << 16 | Int(buffer[offset + 2]) << 8 | Int(buffer[offset + 3])
            guard length <= Self.maxMessageLength else {
                buffers[index] = []
                return (messages, "a handshake message of \(length) bytes")
            }
            guard buffer.count - offset >= 4 + length else { break }
            var body = ByteReader(Array(buffer[(offset + 4)..<(offset + 4 + length)]))
            offset += 4 + length
            messages.append(Self.read(type, &body, direction: direction))
        }
        buffers[index].removeSubrange(0..<offset)
        return (messages, nil)
    }

    /// Forgets what a direction held (it is no longer decoded).
    mutating func clear(_ direction: StreamDirection) { buffers[direction] = [] }

    private static func read(_ type: TLSHandshakeType, _ body: inout ByteReader, direction: StreamDirection) -> Message {
        switch (type, direction) {
        case (.clientHello, .clientToServer): clientHello(&body).map(Message.clientHello) ?? .other
        case (.serverHello, .serverToClient): serverHello(&body)
        case (.encryptedExtensions, .serverToClient): .encryptedExtensions(alpn: body.vector(lengthBytes: 2).map(selectedALPN) ?? nil)
        case (.finished, _): .finished
        case (.keyUpdate, _): .keyUpdate
        default: .other
        }
    }

    private static func clientHello(_ reader: inout ByteReader) -> ClientHello? {
        guard reader.skip(2), let random = reader.bytes(32), reader.vector(lengthBytes: 1) != nil,
              reader.vector(lengthBytes: 2) != nil, reader.vector(lengthBytes: 1) != nil
        else { return nil }
        var hello = ClientHello(random: random)
        guard let extensions = reader.vector(lengthBytes: 2) else { return hello }
        var list = ByteReader(extensions)
        while let type = list.uint16(), let data = list.vector(lengthBytes: 2) {
            var field = ByteReader(data)
            switch type {
            case TLSExtensionType.serverName:  // a list of (type, name)
                if let names = field.vector(lengthBytes: 2) {
                    var entries = ByteReader(names)
                    if let kind = entries.byte(), kind == 0, let name = entries.vector(lengthBytes: 2) {
                        hello.serverName = String(decoding: name, as: UTF8.self)
                    }
                }
            case TLSExtensionType.alpn:
                hello.alpnOffered = protocolNames(&field)
            case TLSExtensionType.earlyData:
                hello.earlyDataOffered = true
            default:
                break
            }
        }
        return hello
    }

    /// SHA-256 of "HelloRetryRequest": the random of a ServerHello that is one (RFC 8446 §4.1.3).
    private static let helloRetryRandom: [UInt8] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    ]

    private static func serverHello(_ reader: inout ByteReader) -> Message {
        guard let legacyVersion = reader.uint16(), let random = reader.bytes(32), reader.vector(lengthBytes: 1) != nil,
              let code = reader.uint16(), reader.skip(1)
        else { return .other }
        if random == helloRetryRandom { return .helloRetryRequest }
        var hello = ServerHello(random: random, version: legacyVersion, cipherSuite: code)
        if let extensions = reader.vector(lengthBytes: 2) {
            var list = ByteReader(extensions)
            while let type = list.uint16(), let data = list.vector(lengthBytes: 2) {
                if type == TLSExtensionType.supportedVersions, data.count == 2 { hello.version = UInt16(data[0]) << 8 | UInt16(data[1]) }
                if type == TLSExtensionType.encryptThenMAC { hello.encryptThenMAC = true }
            }
            hello.alpn = selectedALPN(extensions)
        }
        return .serverHello(hello)
    }

    /// The protocol a server's `application_layer_protocol_negotiation` extension selected: nil
    /// without the extension (the last one counts when there are several).
    private static func selectedALPN(_ extensions: [UInt8]) -> String?? {
        var list = ByteReader(extensions)
        var selected: String??
        while let type = list.uint16(), let data = list.vector(lengthBytes: 2) {
            if type == TLSExtensionType.alpn {
                var field = ByteReader(data)
                selected = protocolNames(&field).first
            }
        }
        return selected
    }

    private static func protocolNames(_ field: inout ByteReader) -> [String] {
        guard let list = field.vector(lengthBytes: 2) else { return [] }
        var names: [String] = []
        var reader = ByteReader(list)
        while let name = reader.vector(lengthBytes: 1) { names.append(String(decoding: name, as: UTF8.self)) }
        return names
    }
}

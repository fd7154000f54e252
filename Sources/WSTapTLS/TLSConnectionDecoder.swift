import WSTapCore

/// What a TLS connection is, as far as its handshake and the key log show.
public struct TLSSession: Sendable, Equatable {
    /// `TLS 1.3`, `TLS 1.2`, …; nil when no ServerHello was captured.
    public var version: String?
    public var cipherSuite: String?
    /// The ClientHello's `server_name`.
    public var serverName: String?
    /// The protocols the client offered by ALPN, and the one the server chose.
    public var alpnOffered: [String] = []
    public var alpn: String?
    public var decrypted = false
    /// Why it is not decrypted (nil when it is).
    public var reason: String?
    /// TLS record bytes per direction (client to server first).
    public var recordBytes = DirectionPair<UInt64>(0)

    public init() {}
}

/// A finding of the TLS stage.
public enum TLSViolation: Hashable, Sendable {
    /// The key log has no secrets for this connection's client random.
    case noKey
    case unsupportedCipherSuite(String)
    /// Records flow without a captured ClientHello and ServerHello: nothing can be decrypted.
    case handshakeNotCaptured
    /// A record did not authenticate with the keys derived from the key log (wrong key, damaged
    /// bytes): it is not shown, and this direction is no longer decrypted.
    case recordNotAuthentic(sequence: UInt64)
    /// A TLS alert (RFC 8446 §6), in the clear or decrypted.
    case alert(level: UInt8, description: UInt8)
    /// Bytes that are not a TLS record where one should start.
    case malformedRecord(String)
    /// Bytes lost in a direction before its records were protected (the handshake): that
    /// direction can no longer be decrypted.
    case streamGap(bytes: UInt64)
    /// Bytes lost among protected records: decryption resumed at the next record that
    /// authenticated, `records` sequence numbers later.
    case resumedAfterGap(bytes: UInt64, records: UInt64)
    /// Bytes lost among protected records and no later record authenticated within the search
    /// bound (a KeyUpdate may have been lost): that direction is no longer decrypted.
    case notResumedAfterGap(bytes: UInt64)
    /// TLS 1.3 0-RTT data from the client (before the server's Finished): not decrypted; the
    /// records are skipped and counted.
    case earlyDataNotDecrypted(records: UInt64)
}

/// What the TLS stage found, in stream order.
public enum TLSEvent {
    /// The handshake is known (or known to be missing): emitted once per connection.
    case session(TLSSession)
    /// Application data, decrypted; borrowed for the call.
    case plaintext(UnsafeRawBufferPointer, StreamDirection)
    /// About this many plaintext bytes were lost in a gap (exact for AEAD records without padding;
    /// the next plaintext may not start where a unit of the protocol inside does).
    case plaintextGap(UInt64, StreamDirection)
    case violation(TLSViolation, StreamDirection?)
}

/// Decrypts one TLS connection with a key log: the record layer of each direction (records cut
/// across segments or many in one), the hellos, the key schedules of TLS 1.2 and 1.3 (with
/// KeyUpdate), and AEAD record protection whose tags are checked before any byte is shown.
///
/// Linear: each direction's bytes are appended once and records are taken off the front by an
/// index (compacted when half is consumed); a record is at most 2^14 + 2,048 bytes and a
/// handshake message at most 256 KiB, past which the direction stops.
public struct TLSConnectionDecoder {
    /// Each event with the capture time of the record behind it (records held while a live key
    /// log catches up keep their own times).
    public typealias Emit = (TLSEvent, CaptureTimestamp) -> Void

    private struct Direction {
        var pending: [UInt8] = []
        var start = 0
        var handshake: [UInt8] = []
        /// Records from now on are protected (after ChangeCipherSpec in 1.2, after the hellos in 1.3).
        var encrypted = false
        var protection: RecordProtection?
        /// TLS 1.2: the keys that ChangeCipherSpec turns on.
        var nextProtection: RecordProtection?
        /// TLS 1.3: the application traffic secret now in use (KeyUpdate derives the next).
        var trafficSecret: [UInt8]?
        /// Nothing more is decoded in this direction (a gap, a bad record, a failed tag).
        var stopped = false
        /// After a gap among protected records: the record bytes lost so far (the gap, the cut
        /// record before it, bytes skipped while looking for the next record); nil when in step.
        var lostBytes: UInt64?
        /// Since the gap: bytes received, and bytes decrypted on trial (the work the search did).
        var bytesSinceGap: UInt64 = 0
        var trialBytes: UInt64 = 0
    }

    /// Sequence numbers tried for a record found after a gap, at most.
    static let maxRecordsLostInGap: UInt64 = 4096
    /// Bytes looked through after a gap for a record that authenticates before giving up.
    static let maxResynchronizationBytes: UInt64 = 16 << 20
    /// Trial decryption allowed after a gap: this much, plus `trialBytesPerByte` times what has
    /// arrived since. Bytes made to look like record headers cannot buy more work than that.
    static let trialBytesBase: UInt64 = 256 << 10
    static let trialBytesPerByte: UInt64 = 64

    private let keyLog: KeyLog?
    private var directions = [Direction(), Direction()]
    public private(set) var session = TLSSession()
    private var sessionReported = false
    private var clientRandom: [UInt8]?
    private var serverRandom: [UInt8]?
    private var suite: CipherSuite?
    private var isTLS13 = false
    /// The ClientHello offered 0-RTT data (RFC 8446 §4.2.10): client records that fail the
    /// handshake keys before the client's first handshake record decrypts are early data.
    private var earlyDataOffered = false
    private var earlyDataRecords: UInt64 = 0
    private var clientHandshakeDecrypted = false
    /// The ServerHello accepted encrypt_then_mac (RFC 7366): CBC records carry the MAC last.
    private var encryptThenMAC = false
    private var secrets: KeyLog.Secrets?
    /// Live: the key log may not have this connection's secrets yet (a browser writes them as it
    /// goes): records are held, up to `maxHeldForKeys` bytes, and decrypted once they appear.
    private let waitsForKeys: Bool
    private var awaitingKeys = false
    private var heldForKeys: [(direction: StreamDirection, type: UInt8, version: UInt16, fragment: [UInt8], time: CaptureTimestamp)] = []
    private var heldForKeysBytes = 0
    static let maxHeldForKeys = 4 << 20
    /// The capture time of the record being decoded: the time of what it produces.
    private var recordTime = CaptureTimestamp.zero

    static let maxRecordLength = (1 << 14) + 2048
    static let maxHandshakeMessage = 256 << 10
    /// SHA-256 of "HelloRetryRequest": the random of a ServerHello that is one (RFC 8446 §4.1.3).
    private static let helloRetryRandom: [UInt8] = [
        0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
        0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
    ]

    /// `waitsForKeys` (live capture): a connection whose secrets are not in the key log yet is
    /// held until they are, rather than given up.
    public init(keyLog: KeyLog?, waitsForKeys: Bool = false) {
        self.keyLog = keyLog
        self.waitsForKeys = waitsForKeys
    }

    /// Whether the first bytes of a stream are a TLS handshake record (a ClientHello, or a
    /// ServerHello when client and server are the wrong way round).
    public static func startsLikeTLS(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 6 else { return false }
        return bytes[0] == TLSContentType.handshake.rawValue && bytes[1] == 3 && bytes[2] <= 4
            && (bytes[5] == TLSHandshakeType.clientHello.rawValue || bytes[5] == TLSHandshakeType.serverHello.rawValue)
    }

    /// Whether the first bytes of a stream are a TLS record of any type with a plausible header:
    /// a capture that starts after the handshake.
    public static func startsLikeTLSRecord(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 5, TLSContentType.known.contains(bytes[0]), bytes[1] == 3, bytes[2] >= 1, bytes[2] <= 4 else { return false }
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        return length > 0 && length <= maxRecordLength
    }

    public mutating func receive(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, emit: Emit) {
        recordTime = time
        let index = direction.rawValue
        session.recordBytes[direction] &+= UInt64(bytes.count)
        guard !directions[index].stopped else { return }
        directions[index].pending.append(contentsOf: bytes)
        if directions[index].lostBytes != nil {
            directions[index].bytesSinceGap &+= UInt64(bytes.count)
            resynchronize(direction, emit: emit)
        }
        while !directions[index].stopped, directions[index].lostBytes == nil {
            let available = directions[index].pending.count - directions[index].start
            guard available >= 5 else { break }
            let start = directions[index].start
            let header = directions[index].pending[start..<(start + 5)]
            let type = header[start]
            let version = UInt16(header[start + 1]) << 8 | UInt16(header[start + 2])
            let length = Int(header[start + 3]) << 8 | Int(header[start + 4])
            guard (20...24).contains(type), header[start + 1] == 3, length <= Self.maxRecordLength else {
                stop(direction, .malformedRecord(String(format: type, version, length)), emit: emit)
                break
            }
            guard available >= 5 + length else { break }
            let fragment = Array(directions[index].pending[(start + 5)..<(start + 5 + length)])
            directions[index].start += 5 + length
            if awaitingKeys {
                holdForKeys(direction: direction, type: type, version: version, fragment: fragment, emit: emit)
            } else {
                fragment.withUnsafeBytes { record(type: type, version: version, fragment: $0, direction: direction, emit: emit) }
            }
        }
        compact(index)
    }

    /// Bytes lost. Among protected records, the next record that authenticates is looked for
    /// (its sequence number found by trying the ones the gap could have skipped); before them (the
    /// handshake), this direction cannot be decrypted any more.
    public mutating func missing(byteCount: UInt64, direction: StreamDirection, at time: CaptureTimestamp, emit: Emit) {
        recordTime = time
        let index = direction.rawValue
        guard !directions[index].stopped else { return }
        guard directions[index].encrypted, directions[index].protection != nil, !awaitingKeys else {
            return stop(direction, .streamGap(bytes: byteCount), emit: emit)
        }
        // The record the gap cut is lost with it.
        let cut = UInt64(directions[index].pending.count - directions[index].start)
        directions[index].pending = []
        directions[index].start = 0
        if directions[index].lostBytes == nil {
            directions[index].bytesSinceGap = 0
            directions[index].trialBytes = 0
        }
        directions[index].lostBytes = (directions[index].lostBytes ?? 0) &+ cut &+ byteCount
    }

    /// After a gap: the first record header from which a record authenticates with a sequence
    /// number the gap could have skipped. Each offset is looked at once; one that starts a
    /// plausible header with its whole record at hand is tried with the sequence numbers the gap
    /// could have skipped, fewest first. Linear: the trial decryption is bounded by
    /// `trialBytesBase` plus `trialBytesPerByte` times the bytes that arrived since the gap
    /// (records made to look right cannot buy more); past it the direction is given up.
    private mutating func resynchronize(_ direction: StreamDirection, emit: Emit) {
        let index = direction.rawValue
        guard var protection = directions[index].protection, let lost = directions[index].lostBytes else { return }
        var offset = directions[index].start
        let bytes = directions[index].pending
        while offset + 5 <= bytes.count {
            let type = bytes[offset], length = Int(bytes[offset + 3]) << 8 | Int(bytes[offset + 4])
            let plausible = (isTLS13 ? type == TLSContentType.applicationData.rawValue : TLSContentType.known.contains(type)) && bytes[offset + 1] == 3
                && bytes[offset + 2] == 3 && length >= 17 && length <= Self.maxRecordLength
            if !plausible { offset += 1; continue }
            guard offset + 5 + length <= bytes.count else { break }  // wait for the whole record
            let version = UInt16(bytes[offset + 1]) << 8 | UInt16(bytes[offset + 2])
            let skipped = UInt64(offset - directions[index].start)
            let firstSequence = protection.sequence
            let tries = min(Self.maxRecordsLostInGap, (lost &+ skipped) / 22 + 2)
            let budget = Self.trialBytesBase &+ Self.trialBytesPerByte &* directions[index].bytesSinceGap
            var found: UInt64?
            var trialBytes = directions[index].trialBytes
            bytes[(offset + 5)..<(offset + 5 + length)].withUnsafeBytes { fragment in
                for lostRecords in 0..<tries {
                    guard trialBytes < budget else { return }
                    trialBytes &+= UInt64(length)
                    let candidate = firstSequence &+ lostRecords
                    var trial = protection
                    trial.sequence = candidate
                    if (try? trial.open(fragment, header: (type, version))) != nil {
                        found = candidate
                        return
                    }
                }
            }
            directions[index].trialBytes = trialBytes
            if found == nil, trialBytes >= budget {
                directions[index].lostBytes = nil
                return stop(direction, .notResumedAfterGap(bytes: lost &+ skipped), emit: emit)
            }
            guard let sequence = found else { offset += 1; continue }
            // In step again: the records from here are decoded as usual, from this one on.
            protection.sequence = sequence
            directions[index].protection = protection
            directions[index].lostBytes = nil
            directions[index].start = offset
            let lostRecords = sequence - firstSequence
            let lostBytes = lost &+ skipped
            emit(.violation(.resumedAfterGap(bytes: lostBytes, records: lostRecords), direction), recordTime)
            let overhead = UInt64(isTLS13 ? 22 : protection.isExplicitNonceGCM ? 29 : 21)
            let plaintextLost = lostBytes > lostRecords &* overhead ? lostBytes - lostRecords &* overhead : 0
            emit(.plaintextGap(plaintextLost, direction), recordTime)
            return
        }
        // Nothing yet: what was looked through is lost too (a candidate at the end is kept).
        let looked = offset - directions[index].start
        directions[index].lostBytes = lost &+ UInt64(looked)
        directions[index].start = offset
        compact(index)
        if lost &+ UInt64(looked) > Self.maxResynchronizationBytes {
            directions[index].lostBytes = nil
            stop(direction, .notResumedAfterGap(bytes: lost &+ UInt64(looked)), emit: emit)
        }
    }

    /// The connection ended: a session never settled is reported as it stands.
    public mutating func finish(at time: CaptureTimestamp, emit: Emit) {
        recordTime = time
        if earlyDataRecords > 0 { emit(.violation(.earlyDataNotDecrypted(records: earlyDataRecords), .clientToServer), time) }
        // The writer may have written the secrets since the last record: one last look.
        if awaitingKeys, !replayIfKeysArrived(emit: emit) { giveUpWaitingForKeys(emit: emit) }
        for direction in StreamDirection.allCases {
            if let lost = directions[direction.rawValue].lostBytes, !directions[direction.rawValue].stopped {
                directions[direction.rawValue].lostBytes = nil
                stop(direction, .notResumedAfterGap(bytes: lost &+ UInt64(directions[direction.rawValue].pending.count)), emit: emit)
            }
        }
        if !sessionReported {
            if session.reason == nil, !session.decrypted {
                session.reason = clientRandom == nil ? "the TLS handshake was not captured" : "no ServerHello was captured"
            }
            reportSession(emit: emit)
        }
    }

    // MARK: - Records

    /// A record that came while the key log lacks this connection's secrets: decrypted (with
    /// those held before it) as soon as they appear.
    private mutating func holdForKeys(direction: StreamDirection, type: UInt8, version: UInt16, fragment: [UInt8], emit: Emit) {
        heldForKeys.append((direction, type, version, fragment, recordTime))
        heldForKeysBytes += fragment.count
        if !replayIfKeysArrived(emit: emit), heldForKeysBytes > Self.maxHeldForKeys {
            giveUpWaitingForKeys(emit: emit)
        }
    }

    /// Decrypts the held records when the key log has the secrets now; false when it still has not.
    private mutating func replayIfKeysArrived(emit: Emit) -> Bool {
        if let clientRandom, let serverRandom, let suite, let secrets = keyLog?.secrets(clientRandom: clientRandom, refreshing: true),
           installKeys(secrets, suite: suite, clientRandom: clientRandom, serverRandom: serverRandom) {
            awaitingKeys = false
            session.decrypted = true
            session.reason = nil
            let held = heldForKeys
            heldForKeys = []
            heldForKeysBytes = 0
            let now = recordTime
            for record in held where !directions[record.direction.rawValue].stopped {
                recordTime = record.time
                record.fragment.withUnsafeBytes {
                    self.record(type: record.type, version: record.version, fragment: $0, direction: record.direction, emit: emit)
                }
            }
            recordTime = now
            return true
        }
        return false
    }

    private mutating func giveUpWaitingForKeys(emit: Emit) {
        awaitingKeys = false
        heldForKeys = []
        heldForKeysBytes = 0
        session.reason = "the key log has no secrets for this connection"
        reportSession(emit: emit)
        emit(.violation(.noKey, nil), recordTime)
    }

    private mutating func record(type: UInt8, version: UInt16, fragment: UnsafeRawBufferPointer, direction: StreamDirection, emit: Emit) {
        let index = direction.rawValue
        var type = type
        var plaintext: [UInt8]
        if directions[index].encrypted, !(isTLS13 && type == TLSContentType.changeCipherSpec.rawValue) {
            guard var protection = directions[index].protection else {
                if clientRandom == nil || serverRandom == nil { return handshakeNotCaptured(emit: emit) }
                // Decrypting, but this direction's next secret is not in the key log (a TLS 1.3
                // traffic secret missing while the handshake secrets were there): said, not dropped.
                if session.decrypted { stop(direction, .noKey, emit: emit) }
                return
            }
            let sequence = protection.sequence
            do {
                plaintext = try protection.open(fragment, header: (type, version))
            } catch where earlyDataOffered && direction == .clientToServer && !clientHandshakeDecrypted {
                // 0-RTT data under the early traffic secret: skipped like a server that rejects it.
                earlyDataRecords += 1
                return
            } catch {
                if !sessionReported {
                    session.decrypted = false
                    session.reason = "a record did not authenticate with the key log's secrets"
                    reportSession(emit: emit)
                }
                stop(direction, .recordNotAuthentic(sequence: sequence), emit: emit)
                return
            }
            directions[index].protection = protection
            if direction == .clientToServer { clientHandshakeDecrypted = true }
            if isTLS13 {
                // TLSInnerPlaintext: content, the real type, zero padding (RFC 8446 §5.2).
                guard let last = plaintext.lastIndex(where: { $0 != 0 }) else {
                    stop(direction, .malformedRecord("a TLS 1.3 record without a content type"), emit: emit)
                    return
                }
                type = plaintext[last]
                plaintext.removeSubrange(last...)
            }
        } else {
            plaintext = Array(fragment)
        }
        switch TLSContentType(rawValue: type) {
        case .changeCipherSpec:
            // ChangeCipherSpec: in TLS 1.2 this direction's records are protected from here on.
            if !isTLS13, serverRandom != nil {
                directions[index].encrypted = true
                directions[index].protection = directions[index].nextProtection
            }
        case .alert:
            // close_notify is how TLS ends normally: not a finding.
            if plaintext.count >= 2, !(plaintext[0] == 1 && plaintext[1] == 0) { emit(.violation(.alert(level: plaintext[0], description: plaintext[1]), direction), recordTime) }
        case .handshake:
            directions[index].handshake += plaintext
            handshakeMessages(direction: direction, emit: emit)
        case .applicationData:
            if direction == .clientToServer, earlyDataOffered, serverRandom == nil {
                earlyDataRecords += 1  // 0-RTT data sent before the ServerHello
                return
            }
            if clientRandom == nil || serverRandom == nil { return handshakeNotCaptured(emit: emit) }
            if !sessionReported { reportSession(emit: emit) }
            guard session.decrypted else { return }
            plaintext.withUnsafeBytes { emit(.plaintext($0, direction), recordTime) }
        default:
            break  // Heartbeat
        }
    }

    private mutating func compact(_ index: Int) {
        let start = directions[index].start
        if start == directions[index].pending.count {
            directions[index].pending.removeAll(keepingCapacity: directions[index].pending.count <= 64 << 10)
            directions[index].start = 0
        } else if start > directions[index].pending.count / 2 {
            directions[index].pending.removeSubrange(0..<start)
            directions[index].start = 0
        }
    }

    private mutating func stop(_ direction: StreamDirection, _ violation: TLSViolation, emit: Emit) {
        let index = direction.rawValue
        directions[index].stopped = true
        directions[index].pending = []
        directions[index].start = 0
        directions[index].handshake = []
        emit(.violation(violation, direction), recordTime)
    }

    private mutating func handshakeNotCaptured(emit: Emit) {
        guard !sessionReported else { return }
        session.reason = "the TLS handshake was not captured (the capture starts after it)"
        reportSession(emit: emit)
        emit(.violation(.handshakeNotCaptured, nil), recordTime)
    }

    private mutating func reportSession(emit: Emit) {
        sessionReported = true
        emit(.session(session), recordTime)
    }

    // MARK: - Handshake messages

    private mutating func handshakeMessages(direction: StreamDirection, emit: Emit) {
        let index = direction.rawValue
        var offset = 0
        while directions[index].handshake.count - offset >= 4 {
            let buffer = directions[index].handshake
            let type = buffer[offset]
            let length = Int(buffer[offset + 1]) << 16 | Int(buffer[offset + 2]) << 8 | Int(buffer[offset + 3])
            guard length <= Self.maxHandshakeMessage else {
                stop(direction, .malformedRecord("a handshake message of \(length) bytes"), emit: emit)
                return
            }
            guard buffer.count - offset >= 4 + length else { break }
            let body = Array(buffer[(offset + 4)..<(offset + 4 + length)])
            offset += 4 + length
            handshakeMessage(type: type, body: body, direction: direction, emit: emit)
            if directions[index].stopped { return }
        }
        directions[index].handshake.removeSubrange(0..<offset)
    }

    private mutating func handshakeMessage(type: UInt8, body: [UInt8], direction: StreamDirection, emit: Emit) {
        var reader = ByteReader(body)
        switch (type, direction) {
        case (1, .clientToServer):
            clientHello(&reader)
        case (2, .serverToClient):
            serverHello(&reader, emit: emit)
        case (8, .serverToClient):
            // EncryptedExtensions (TLS 1.3): where the server's ALPN choice is.
            if let extensions = reader.vector(lengthBytes: 2) { serverExtensions(extensions) }
            if !sessionReported { reportSession(emit: emit) }
        case (20, _) where isTLS13:
            // Finished: this direction's next records use its application traffic secret (looked
            // up again: a key log being written may have added it since the handshake secrets).
            if let clientRandom, let fresh = keyLog?.secrets(clientRandom: clientRandom, refreshing: waitsForKeys) { secrets = fresh }
            let secret = direction == .clientToServer ? secrets?.clientTraffic0 : secrets?.serverTraffic0
            useTrafficSecret(secret, direction: direction)
        case (24, _) where isTLS13:
            // KeyUpdate (RFC 8446 §4.6.3): the sender's next records use the next secret.
            if let suite, let current = directions[direction.rawValue].trafficSecret {
                useTrafficSecret(KeySchedule.nextTrafficSecret(suite: suite, secret: current), direction: direction)
            }
        default:
            break
        }
    }

    private mutating func useTrafficSecret(_ secret: [UInt8]?, direction: StreamDirection) {
        let index = direction.rawValue
        directions[index].trafficSecret = secret
        guard let suite, let secret else {
            directions[index].protection = nil
            return
        }
        directions[index].protection = KeySchedule.tls13(suite: suite, secret: secret)
    }

    private mutating func clientHello(_ reader: inout ByteReader) {
        guard reader.skip(2), let random = reader.bytes(32), reader.vector(lengthBytes: 1) != nil,
              reader.vector(lengthBytes: 2) != nil, reader.vector(lengthBytes: 1) != nil
        else { return }
        clientRandom = random
        guard let extensions = reader.vector(lengthBytes: 2) else { return }
        var list = ByteReader(extensions)
        while let type = list.uint16(), let data = list.vector(lengthBytes: 2) {
            var field = ByteReader(data)
            switch type {
            case 0:  // server_name: a list of (type, name)
                if let names = field.vector(lengthBytes: 2) {
                    var entries = ByteReader(names)
                    if let kind = entries.byte(), kind == 0, let name = entries.vector(lengthBytes: 2) {
                        session.serverName = String(decoding: name, as: UTF8.self)
                    }
                }
            case 16:
                session.alpnOffered = Self.protocolNames(&field)
            case 42:
                earlyDataOffered = true
            default:
                break
            }
        }
    }

    private mutating func serverHello(_ reader: inout ByteReader, emit: Emit) {
        guard let legacyVersion = reader.uint16(), let random = reader.bytes(32), reader.vector(lengthBytes: 1) != nil,
              let code = reader.uint16(), reader.skip(1)
        else { return }
        if random == Self.helloRetryRandom { return }  // A second ClientHello and the real ServerHello follow.
        serverRandom = random
        var version = legacyVersion
        if let extensions = reader.vector(lengthBytes: 2) {
            var list = ByteReader(extensions)
            while let type = list.uint16(), let data = list.vector(lengthBytes: 2) {
                if type == 43, data.count == 2 { version = UInt16(data[0]) << 8 | UInt16(data[1]) }
                if type == 22 { encryptThenMAC = true }
            }
            serverExtensions(extensions)
        }
        let suite = CipherSuite(code: code)
        self.suite = suite
        isTLS13 = version == 0x0304
        session.version = Self.versionName(version)
        session.cipherSuite = suite.name
        if isTLS13 {
            // Both directions are protected from the next record on (the compatibility
            // ChangeCipherSpec records excepted), first with the handshake traffic secrets.
            directions[0].encrypted = true
            directions[1].encrypted = true
        }
        guard let clientRandom else {
            session.reason = "the ClientHello was not captured"
            return reportSession(emit: emit)
        }
        guard version >= 0x0303 else {
            // TLS 1.0 and 1.1 use another PRF (MD5 and SHA-1) and, in 1.0, chained IVs.
            session.reason = "\(Self.versionName(version)) is not decrypted (TLS 1.2 and 1.3 are)"
            return reportSession(emit: emit)
        }
        guard suite.parameters != nil, !(isTLS13 && suite.isCBC) else {
            session.reason = "cipher suite \(suite.name) is not decrypted"
            reportSession(emit: emit)
            return emit(.violation(.unsupportedCipherSuite(suite.name), nil), recordTime)
        }
        guard let keyLog else {
            session.reason = "no key log was given (--keylog or SSLKEYLOGFILE)"
            return reportSession(emit: emit)
        }
        guard let secrets = keyLog.secrets(clientRandom: clientRandom), installKeys(secrets, suite: suite, clientRandom: clientRandom, serverRandom: random) else {
            if waitsForKeys {
                awaitingKeys = true
                session.reason = "waiting for the key log to give this connection's secrets"
                return
            }
            session.reason = "the key log has no secrets for this connection"
            reportSession(emit: emit)
            return emit(.violation(.noKey, nil), recordTime)
        }
        session.decrypted = true
        if !isTLS13 { reportSession(emit: emit) }  // TLS 1.3 waits for EncryptedExtensions (ALPN).
    }

    private mutating func installKeys(_ secrets: KeyLog.Secrets, suite: CipherSuite, clientRandom: [UInt8], serverRandom: [UInt8]) -> Bool {
        self.secrets = secrets
        if isTLS13 {
            guard let client = secrets.clientHandshakeTraffic, let server = secrets.serverHandshakeTraffic else { return false }
            directions[0].protection = KeySchedule.tls13(suite: suite, secret: client)
            directions[1].protection = KeySchedule.tls13(suite: suite, secret: server)
            return directions[0].protection != nil && directions[1].protection != nil
        }
        guard let master = secrets.masterSecret,
              let keys = KeySchedule.tls12(
                suite: suite, masterSecret: master, clientRandom: clientRandom, serverRandom: serverRandom,
                encryptThenMAC: encryptThenMAC)
        else { return false }
        directions[0].nextProtection = keys.client
        directions[1].nextProtection = keys.server
        return true
    }

    private mutating func serverExtensions(_ extensions: [UInt8]) {
        var list = ByteReader(extensions)
        while let type = list.uint16(), let data = list.vector(lengthBytes: 2) {
            if type == 16 {
                var field = ByteReader(data)
                session.alpn = Self.protocolNames(&field).first
            }
        }
    }

    private static func protocolNames(_ field: inout ByteReader) -> [String] {
        guard let list = field.vector(lengthBytes: 2) else { return [] }
        var names: [String] = []
        var reader = ByteReader(list)
        while let name = reader.vector(lengthBytes: 1) { names.append(String(decoding: name, as: UTF8.self)) }
        return names
    }

    static func versionName(_ version: UInt16) -> String {
        switch version {
        case 0x0300: "SSL 3.0"
        case 0x0301: "TLS 1.0"
        case 0x0302: "TLS 1.1"
        case 0x0303: "TLS 1.2"
        case 0x0304: "TLS 1.3"
        default: "0x" + String(version, radix: 16)
        }
    }
}

private extension String {
    /// The description of a record header that is not TLS.
    init(format type: UInt8, _ version: UInt16, _ length: Int) {
        self = "record type \(type), version 0x\(String(version, radix: 16)), length \(length)"
    }
}

/// Reads big-endian fields and length-prefixed vectors off the front of bytes, never past them.
struct ByteReader {
    private let bytes: [UInt8]
    private var offset = 0

    init(_ bytes: [UInt8]) { self.bytes = bytes }

    mutating func byte() -> UInt8? {
        guard offset < bytes.count else { return nil }
        offset += 1
        return bytes[offset - 1]
    }

    mutating func uint16() -> UInt16? {
        guard let high = byte(), let low = byte() else { return nil }
        return UInt16(high) << 8 | UInt16(low)
    }

    mutating func skip(_ count: Int) -> Bool {
        guard bytes.count - offset >= count else { return false }
        offset += count
        return true
    }

    mutating func bytes(_ count: Int) -> [UInt8]? {
        guard bytes.count - offset >= count else { return nil }
        offset += count
        return Array(bytes[(offset - count)..<offset])
    }

    /// A vector whose length comes first in `lengthBytes` bytes.
    mutating func vector(lengthBytes: Int) -> [UInt8]? {
        var length = 0
        for _ in 0..<lengthBytes {
            guard let next = byte() else { return nil }
            length = length << 8 | Int(next)
        }
        return bytes(length)
    }
}

/// Names of TLS alert descriptions (RFC 8446 §6).
public enum TLSAlert {
    public static func name(_ description: UInt8) -> String {
        switch description {
        case 0: "close_notify"
        case 10: "unexpected_message"
        case 20: "bad_record_mac"
        case 22: "record_overflow"
        case 40: "handshake_failure"
        case 42: "bad_certificate"
        case 43: "unsupported_certificate"
        case 44: "certificate_revoked"
        case 45: "certificate_expired"
        case 46: "certificate_unknown"
        case 47: "illegal_parameter"
        case 48: "unknown_ca"
        case 49: "access_denied"
        case 50: "decode_error"
        case 51: "decrypt_error"
        case 70: "protocol_version"
        case 71: "insufficient_security"
        case 80: "internal_error"
        case 86: "inappropriate_fallback"
        case 90: "user_canceled"
        case 109: "missing_extension"
        case 110: "unsupported_extension"
        case 112: "unrecognized_name"
        case 113: "bad_certificate_status_response"
        case 115: "unknown_psk_identity"
        case 116: "certificate_required"
        case 120: "no_application_protocol"
        default: "unknown"
        }
    }
}

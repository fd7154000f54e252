import WSTapCore

/// Decrypts one TLS connection with a key log, gluing its parts together as Zeek's SSL analyzer
/// does: the record layer of each direction (`TLSRecordLayer`: records cut across segments or
/// many in one), the handshake reader (`TLSHandshakeReader`: the hellos into the session), and
/// the keys (`KeySchedule` for TLS 1.2 and 1.3 with KeyUpdate, `RecordProtection` whose tags are
/// checked before any byte is shown). Decrypted application data leaves through one door,
/// `TLSEvent.plaintext`, whatever ALPN selected: what runs inside is the next stage's business.
///
/// Linear: the record layer and the handshake reader are; a record is at most 2^14 + 2,048 bytes
/// and a handshake message at most 256 KiB, past which the direction stops.
public struct TLSConnectionDecoder: StreamParser {
    /// Each event with the capture time of the record behind it (records held while a live key
    /// log catches up keep their own times).
    typealias Emit = (TLSEvent, CaptureTimestamp) -> Void

    private struct Direction {
        var records = TLSRecordLayer()
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
    static let maxResynchronizationBytes: UInt64 = .mebibytes(16)
    /// Trial decryption allowed after a gap: this much, plus `trialBytesPerByte` times what has
    /// arrived since. Bytes made to look like record headers cannot buy more work than that.
    static let trialBytesBase: UInt64 = .kibibytes(256)
    static let trialBytesPerByte: UInt64 = 64

    private let keyLog: KeyLog?
    private var directions = DirectionPair(Direction())
    private var handshake = TLSHandshakeReader()
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
    private var heldForKeys: [(direction: StreamDirection, record: TLSRecordLayer.Record, time: CaptureTimestamp)] = []
    private var heldForKeysBytes = 0
    static let maxHeldForKeys = Int.mebibytes(4)
    /// The capture time of the record being decoded: the time of what it produces.
    private var recordTime = CaptureTimestamp.zero
    private var finishedDirections = 0

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
        return bytes[bytes.startIndex] == TLSContentType.handshake.rawValue && bytes[1] == 3 && bytes[2] <= 4
            && (bytes[5] == TLSHandshakeType.clientHello.rawValue || bytes[5] == TLSHandshakeType.serverHello.rawValue)
    }

    /// Whether the first bytes of a stream are a TLS record of any type with a plausible header:
    /// a capture that starts after the handshake.
    public static func startsLikeTLSRecord(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 5, TLSContentType.known.contains(bytes[0]), bytes[1] == 3, bytes[2] >= 1, bytes[2] <= 4 else { return false }
        let length = Int(bytes[3]) << 8 | Int(bytes[4])
        return length > 0 && length <= TLSRecordLayer.maxRecordLength
    }

    public mutating func receive(
        _ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, emit: (TimedTLSEvent) -> Void
    ) {
        decode(bytes, direction: direction, at: time) { emit(TimedTLSEvent(event: $0, time: $1)) }
    }

    /// Bytes lost. Among protected records, the next record that authenticates is looked for
    /// (its sequence number found by trying the ones the gap could have skipped); before them (the
    /// handshake), this direction cannot be decrypted any more.
    public mutating func missing(
        _ gap: MissingBytes, direction: StreamDirection, at time: CaptureTimestamp, emit: (TimedTLSEvent) -> Void
    ) {
        lose(gap.count, direction: direction, at: time) { emit(TimedTLSEvent(event: $0, time: $1)) }
    }

    /// TLS ends both directions at once: when the second of them ends, a session never settled is
    /// reported as it stands.
    public mutating func finish(direction: StreamDirection, at time: CaptureTimestamp, emit: (TimedTLSEvent) -> Void) {
        finishedDirections += 1
        guard finishedDirections == 2 else { return }
        end(at: time) { emit(TimedTLSEvent(event: $0, time: $1)) }
    }

    private mutating func decode(_ bytes: UnsafeRawBufferPointer, direction: StreamDirection, at time: CaptureTimestamp, emit: Emit) {
        recordTime = time
        let index = direction.rawValue
        session.recordBytes[direction] &+= UInt64(bytes.count)
        guard !directions[index].stopped else { return }
        directions[index].records.append(bytes)
        if directions[index].lostBytes != nil {
            directions[index].bytesSinceGap &+= UInt64(bytes.count)
            resynchronize(direction, emit: emit)
        }
        while !directions[index].stopped, directions[index].lostBytes == nil {
            switch directions[index].records.next() {
            case .needMoreBytes:
                break
            case .malformed(let description):
                stop(direction, .malformedRecord(description), emit: emit)
                continue
            case .record(let record):
                if awaitingKeys {
                    holdForKeys(direction: direction, record: record, emit: emit)
                } else {
                    record.fragment.withUnsafeBytes {
                        self.record(type: record.type, version: record.version, fragment: $0, direction: direction, emit: emit)
                    }
                }
                continue
            }
            break
        }
        directions[index].records.compact()
    }

    private mutating func lose(_ byteCount: UInt64, direction: StreamDirection, at time: CaptureTimestamp, emit: Emit) {
        recordTime = time
        let index = direction.rawValue
        guard !directions[index].stopped else { return }
        guard directions[index].encrypted, directions[index].protection != nil, !awaitingKeys else {
            return stop(direction, .streamGap(bytes: byteCount), emit: emit)
        }
        // The record the gap cut is lost with it.
        let cut = directions[index].records.discard()
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
        let records = directions[index].records
        var offset = records.start
        let bytes = records.pending
        while offset + 5 <= bytes.count {
            let (plausible, length) = records.plausibleRecord(at: offset, tls13: isTLS13)
            if !plausible { offset += 1; continue }
            let type = bytes[offset]
            guard offset + 5 + length <= bytes.count else { break }  // wait for the whole record
            let version = UInt16(bytes[offset + 1]) << 8 | UInt16(bytes[offset + 2])
            let skipped = UInt64(offset - records.start)
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
            directions[index].records.resume(at: offset)
            let lostRecords = sequence - firstSequence
            let lostBytes = lost &+ skipped
            emit(.violation(.resumedAfterGap(bytes: lostBytes, records: lostRecords), direction), recordTime)
            let overhead = UInt64(isTLS13 ? 22 : protection.isExplicitNonceGCM ? 29 : 21)
            let plaintextLost = lostBytes > lostRecords &* overhead ? lostBytes - lostRecords &* overhead : 0
            emit(.plaintextGap(plaintextLost, direction), recordTime)
            return
        }
        // Nothing yet: what was looked through is lost too (a candidate at the end is kept).
        let looked = offset - records.start
        directions[index].lostBytes = lost &+ UInt64(looked)
        directions[index].records.resume(at: offset)
        directions[index].records.compact()
        if lost &+ UInt64(looked) > Self.maxResynchronizationBytes {
            directions[index].lostBytes = nil
            stop(direction, .notResumedAfterGap(bytes: lost &+ UInt64(looked)), emit: emit)
        }
    }

    private mutating func end(at time: CaptureTimestamp, emit: Emit) {
        recordTime = time
        if earlyDataRecords > 0 { emit(.violation(.earlyDataNotDecrypted(records: earlyDataRecords), .clientToServer), time) }
        // The writer may have written the secrets since the last record: one last look.
        if awaitingKeys, !replayIfKeysArrived(emit: emit) { giveUpWaitingForKeys(emit: emit) }
        for direction in StreamDirection.allCases {
            if let lost = directions[direction].lostBytes, !directions[direction].stopped {
                directions[direction].lostBytes = nil
                stop(direction, .notResumedAfterGap(bytes: lost &+ UInt64(directions[direction].records.pending.count)), emit: emit)
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
    private mutating func holdForKeys(direction: StreamDirection, record: TLSRecordLayer.Record, emit: Emit) {
        heldForKeys.append((direction, record, recordTime))
        heldForKeysBytes += record.fragment.count
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
            for (direction, record, time) in held where !directions[direction].stopped {
                recordTime = time
                record.fragment.withUnsafeBytes {
                    self.record(type: record.type, version: record.version, fragment: $0, direction: direction, emit: emit)
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

    private mutating func record(
        type: TLSContentType, version: UInt16, fragment: UnsafeRawBufferPointer, direction: StreamDirection, emit: Emit
    ) {
        let index = direction.rawValue
        var type = type
        var plaintext: [UInt8]
        if directions[index].encrypted, !(isTLS13 && type == .changeCipherSpec) {
            guard var protection = directions[index].protection else {
                if clientRandom == nil || serverRandom == nil { return handshakeNotCaptured(emit: emit) }
                // Decrypting, but this direction's next secret is not in the key log (a TLS 1.3
                // traffic secret missing while the handshake secrets were there): said, not dropped.
                if session.decrypted { stop(direction, .noKey, emit: emit) }
                return
            }
            let sequence = protection.sequence
            do {
                plaintext = try protection.open(fragment, header: (type.rawValue, version))
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
                type = TLSContentType(rawValue: plaintext[last])
                plaintext.removeSubrange(last...)
            }
        } else {
            plaintext = Array(fragment)
        }
        switch type {
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
            let (messages, malformed) = handshake.add(plaintext, direction: direction)
            for message in messages where !directions[index].stopped { handshakeMessage(message, direction: direction, emit: emit) }
            if let malformed, !directions[index].stopped { stop(direction, .malformedRecord(malformed), emit: emit) }
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

    private mutating func stop(_ direction: StreamDirection, _ violation: TLSViolation, emit: Emit) {
        let index = direction.rawValue
        directions[index].stopped = true
        _ = directions[index].records.discard()
        handshake.clear(direction)
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

    private mutating func handshakeMessage(_ message: TLSHandshakeReader.Message, direction: StreamDirection, emit: Emit) {
        switch message {
        case .clientHello(let hello):
            clientRandom = hello.random
            if let name = hello.serverName { session.serverName = name }
            if let offered = hello.alpnOffered { session.alpnOffered = offered }
            if hello.earlyDataOffered { earlyDataOffered = true }
        case .serverHello(let hello):
            serverHello(hello, emit: emit)
        case .helloRetryRequest, .other:
            break
        case .encryptedExtensions(let alpn):
            if let alpn { session.alpn = alpn }
            if !sessionReported { reportSession(emit: emit) }
        case .finished where isTLS13:
            // Finished: this direction's next records use its application traffic secret (looked
            // up again: a key log being written may have added it since the handshake secrets).
            if let clientRandom, let fresh = keyLog?.secrets(clientRandom: clientRandom, refreshing: waitsForKeys) { secrets = fresh }
            let secret = direction == .clientToServer ? secrets?.clientTraffic0 : secrets?.serverTraffic0
            useTrafficSecret(secret, direction: direction)
        case .keyUpdate where isTLS13:
            // KeyUpdate (RFC 8446 §4.6.3): the sender's next records use the next secret.
            if let suite, let current = directions[direction].trafficSecret {
                useTrafficSecret(KeySchedule.nextTrafficSecret(suite: suite, secret: current), direction: direction)
            }
        case .finished, .keyUpdate:
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

    private mutating func serverHello(_ hello: TLSHandshakeReader.ServerHello, emit: Emit) {
        let (random, version) = (hello.random, hello.version)
        serverRandom = random
        if hello.encryptThenMAC { encryptThenMAC = true }
        if let alpn = hello.alpn { session.alpn = alpn }
        let suite = CipherSuite(code: hello.cipherSuite)
        self.suite = suite
        isTLS13 = version == TLSVersion.tls13
        session.version = TLSVersion.name(version)
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
        guard version >= TLSVersion.tls12 else {
            // TLS 1.0 and 1.1 use another PRF (MD5 and SHA-1) and, in 1.0, chained IVs.
            session.reason = "\(TLSVersion.name(version)) is not decrypted (TLS 1.2 and 1.3 are)"
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

}

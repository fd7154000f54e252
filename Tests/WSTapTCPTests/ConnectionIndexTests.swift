import Testing
import WSTapPackets
@testable import WSTapTCP

/// The connection index against a `Dictionary` model: random inserts, replacements, removals and
/// lookups, across growth, with keys crowded into few ports and addresses so clusters form.
struct ConnectionIndexTests {
    @Test func agreesWithADictionary() {
        var generator = SystemRandomNumberGenerator()
        var index = ConnectionIndex<ConnectionKey, Int>()
        var model: [ConnectionKey: Int] = [:]
        func key() -> ConnectionKey {
            let address: IPAddress = Bool.random(using: &generator)
                ? .v4(UInt32.random(in: 1...40, using: &generator))
                : .v6(high: UInt64.random(in: 0...2, using: &generator), low: UInt64.random(in: 1...20, using: &generator))
            return ConnectionKey(
                Endpoint(address: address, port: UInt16.random(in: 1...30, using: &generator)),
                Endpoint(address: .v4(7), port: 80))
        }
        for step in 0..<60_000 {
            let k = key()
            switch Int.random(in: 0..<10, using: &generator) {
            case 0..<5:
                #expect(index.updateValue(step, forKey: k) == model.updateValue(step, forKey: k))
            case 5..<8:
                #expect(index.removeValue(forKey: k) == model.removeValue(forKey: k))
            default:
                #expect(index[k] == model[k])
            }
            #expect(index.count == model.count)
        }
        for (k, value) in model { #expect(index[k] == value) }
        #expect(index.values.sorted() == model.values.sorted())
        // Emptied completely, every key is gone.
        for k in Array(model.keys) { #expect(index.removeValue(forKey: k) != nil) }
        #expect(index.count == 0 && index.values.isEmpty)
    }

    /// Both directions of a connection find the same entry.
    @Test func bothDirectionsAreOneKey() {
        let client = Endpoint(address: .v4(0x0A00_0001), port: 50000), server = Endpoint(address: .v4(0x0A00_0002), port: 80)
        var index = ConnectionIndex<ConnectionKey, String>()
        index.updateValue("c", forKey: ConnectionKey(client, server))
        #expect(index[ConnectionKey(server, client)] == "c")
    }
}

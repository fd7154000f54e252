import Testing
import WSTapCore

struct FIFOQueueTests {
    /// Random appends, insertions and removals agree with a plain array across the queue's
    /// compactions.
    @Test func agreesWithAnArrayAcrossCompactions() {
        var queue = FIFOQueue<Int>()
        var model: [Int] = []
        var generator = SystemRandomNumberGenerator()
        for value in 0..<50_000 {
            switch Int.random(in: 0..<5, using: &generator) {
            case 0, 1:
                queue.append(value)
                model.append(value)
            case 2:
                let position = Int.random(in: 0...model.count, using: &generator)
                queue.insert(value, at: position)
                model.insert(value, at: position)
            default:
                guard !model.isEmpty else { continue }
                #expect(queue.removeFirst() == model.removeFirst())
            }
            #expect(queue.count == model.count && queue.first == model.first && queue.last == model.last)
            if !model.isEmpty {
                let position = Int.random(in: 0..<model.count, using: &generator)
                #expect(queue[position] == model[position])
            }
        }
        queue.removeAll()
        #expect(queue.isEmpty && queue.first == nil && queue.last == nil)
    }

    /// A removed element is released when it is taken, not when the array is compacted.
    @Test func releasesWhatIsTaken() {
        final class Tracked {}
        var queue = FIFOQueue<Tracked>()
        weak var firstOne: Tracked?
        do {
            let element = Tracked()
            firstOne = element
            queue.append(element)
        }
        queue.append(Tracked())
        queue.removeFirst()
        #expect(firstOne == nil)
        #expect(queue.count == 1)
    }
}

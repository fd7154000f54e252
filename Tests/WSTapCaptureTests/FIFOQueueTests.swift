import Testing
import WSTapCapture

struct FIFOQueueTests {
    /// Random appends and removals keep first-in first-out order across the queue's compactions.
    @Test func keepsOrderAcrossCompactions() {
        var queue = FIFOQueue<Int>()
        var model: [Int] = []
        var generator = SystemRandomNumberGenerator()
        for value in 0..<50_000 {
            if Bool.random(using: &generator) || model.isEmpty {
                queue.append(value)
                model.append(value)
            } else {
                #expect(queue.removeFirst() == model.removeFirst())
            }
            #expect(queue.count == model.count && queue.first == model.first && queue.isEmpty == model.isEmpty)
        }
        queue.removeAll()
        #expect(queue.isEmpty && queue.first == nil)
    }
}

/// A queue over an array, consumed from the front. Taking the first element moves an index and
/// releases the element at once; the emptied slots are dropped in one go once they are half the
/// array, or when the queue empties (removing from an array's front each time is quadratic).
/// Elements can also be read and inserted by position, for a queue kept in order.
public struct FIFOQueue<Element> {
    private var slots: [Element?] = []
    private var head = 0

    public init() {}

    public var count: Int { slots.count - head }
    public var isEmpty: Bool { head == slots.count }
    public var first: Element? { isEmpty ? nil : slots[head] }
    public var last: Element? { isEmpty ? nil : slots[slots.count - 1] }

    /// The element `position` places from the front.
    public subscript(position: Int) -> Element { slots[head + position]! }

    public mutating func append(_ element: Element) { slots.append(element) }

    /// Changes the last element in place; the queue must not be empty.
    public mutating func updateLast(_ change: (inout Element) -> Void) {
        change(&slots[slots.count - 1]!)
    }

    /// Inserts `element` so that it becomes the one at `position` from the front.
    public mutating func insert(_ element: Element, at position: Int) { slots.insert(element, at: head + position) }

    /// Removes and returns the first element; the queue must not be empty.
    @discardableResult
    public mutating func removeFirst() -> Element {
        let element = slots[head].take()!
        head += 1
        if head == slots.count {
            slots.removeAll(keepingCapacity: slots.count <= 1024)
            head = 0
        } else if head >= 64, head * 2 >= slots.count {
            slots.removeFirst(head)
            head = 0
        }
        return element
    }

    public mutating func removeAll() {
        slots.removeAll()
        head = 0
    }
}

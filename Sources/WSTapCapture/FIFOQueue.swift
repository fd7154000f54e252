/// A first-in first-out queue over an array. Taking from the front moves an index; the taken
/// elements are dropped in one go once they are half the array, or when the queue empties
/// (removing from an array's front each time is quadratic).
public struct FIFOQueue<Element> {
    private var elements: [Element] = []
    private var head = 0

    public init() {}

    public var count: Int { elements.count - head }
    public var isEmpty: Bool { head == elements.count }
    public var first: Element? { isEmpty ? nil : elements[head] }

    public mutating func append(_ element: Element) { elements.append(element) }

    /// Removes and returns the oldest element; the queue must not be empty.
    @discardableResult
    public mutating func removeFirst() -> Element {
        let element = elements[head]
        head += 1
        if head == elements.count {
            elements.removeAll(keepingCapacity: elements.count <= 1024)
            head = 0
        } else if head >= 64, head * 2 >= elements.count {
            elements.removeFirst(head)
            head = 0
        }
        return element
    }

    public mutating func removeAll() {
        elements.removeAll()
        head = 0
    }
}

import Foundation

/// Forwards the core's events into an `AsyncStream`.
private final class StreamForwarder: EventListener, @unchecked Sendable {
    private let continuation: AsyncStream<PieperEvent>.Continuation

    init(_ continuation: AsyncStream<PieperEvent>.Continuation) {
        self.continuation = continuation
    }

    func onEvent(event: PieperEvent) {
        continuation.yield(event)
    }
}

extension PieperClient {
    /// The client's events as an `AsyncStream`: iterating subscribes, ending
    /// the iteration (or the task) unsubscribes. Nothing but forwarding here.
    public func events() -> AsyncStream<PieperEvent> {
        AsyncStream(bufferingPolicy: .bufferingNewest(1024)) { continuation in
            let handle = self.subscribe(listener: StreamForwarder(continuation))
            continuation.onTermination = { _ in handle.cancel() }
        }
    }
}

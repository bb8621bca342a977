import NIOCore

/// gRPC-style keepalive for one connection, on its event loop: `ping` every `interval`; if a ping
/// goes unanswered (`answered()`) for `timeout`, `timedOut`. What a ping is and what timing out does
/// belong to the connection.
final class KeepaliveTimer {
    private let interval: TimeAmount
    private let timeout: TimeAmount
    private var pingTask: Scheduled<Void>?
    private var timeoutTask: Scheduled<Void>?

    init(interval: Duration, timeout: Duration) {
        self.interval = .nanoseconds(interval.nanoseconds)
        self.timeout = .nanoseconds(timeout.nanoseconds)
    }

    /// Starts pinging (once; later calls do nothing). `ping` returns false to stop.
    func start(on loop: any EventLoop, ping: @escaping () -> Bool, timedOut: @escaping () -> Void) {
        guard pingTask == nil else { return }
        let bound = NIOLoopBound((self, ping, timedOut), eventLoop: loop)
        pingTask = loop.scheduleTask(in: interval) {
            let (timer, ping, timedOut) = bound.value
            timer.pingTask = nil
            guard ping() else { return }
            if timer.timeoutTask == nil {
                timer.timeoutTask = loop.scheduleTask(in: timer.timeout) {
                    let (timer, _, timedOut) = bound.value
                    timer.timeoutTask = nil
                    timedOut()
                }
            }
            timer.start(on: loop, ping: ping, timedOut: timedOut)
        }
    }

    /// The client answered a ping.
    func answered() {
        timeoutTask?.cancel()
        timeoutTask = nil
    }

    func cancel() {
        pingTask?.cancel()
        timeoutTask?.cancel()
        (pingTask, timeoutTask) = (nil, nil)
    }
}

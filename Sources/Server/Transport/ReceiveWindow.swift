/// A window this side grants (RFC 9113 §6.9), a stream's or the connection's: what the client may still
/// send, and what it has sent that is not yet granted again. Granted again in one WINDOW_UPDATE once half
/// the window has been used.
struct ReceiveWindow {
    /// The window this side keeps open.
    let size: Int
    private var available: Int
    private var unannounced = 0

    /// `available`: what the client may send now (a connection's starts at HTTP/2's default until this
    /// side opens it to `size`).
    init(size: Int, available: Int) {
        self.size = size
        self.available = available
    }

    /// `count` bytes arrived. - Returns: false when they went beyond the window.
    mutating func receive(_ count: Int) -> Bool {
        available -= count
        unannounced += count
        return available >= 0
    }

    /// What to grant again in a WINDOW_UPDATE, once half the window has been used; nil before.
    mutating func takeUpdate() -> Int? {
        guard unannounced >= size / 2 else { return nil }
        defer {
            available += unannounced
            unannounced = 0
        }
        return unannounced
    }

    /// Opens the window to its size. - Returns: the increment to announce, nil when there is none.
    mutating func open() -> Int? {
        guard size > available else { return nil }
        defer { available = size }
        return size - available
    }
}

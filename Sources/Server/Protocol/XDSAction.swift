/// What a stream's protocol machine tells its shell to do after an input (a request or a snapshot).
public enum XDSAction<Response: Sendable & Equatable>: Sendable, Equatable {
    /// Nothing to send.
    case none
    /// Send these responses, in order.
    case send([Response])
    /// End the stream with this error.
    case fail(XDSError)

    /// The responses to send (none for `.none` and `.fail`).
    public var responses: [Response] {
        if case .send(let responses) = self { return responses }
        return []
    }

    /// The error to end the stream with, if any.
    public var error: XDSError? {
        if case .fail(let error) = self { return error }
        return nil
    }
}

import AsyncHTTPClient
import Foundation

/// Something that hands out bearer tokens for the API server and renews them before they expire.
public protocol BearerTokenProvider: Sendable {
    /// A currently valid token (cached, or freshly made).
    func token() async throws -> String
    /// The API server refused the last token (401): drop it, so the next call makes a new one.
    func invalidate() async
}

import X509

public struct IdentityPatternError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

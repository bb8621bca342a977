/// Splits `host:port` (`[::1]:9090` for IPv6), as configuration files and flags give listen addresses.
/// - Returns: nil when there is no host or the port is not 0...65535.
public func splitHostAndPort(_ text: String) -> (host: String, port: Int)? {
    guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port) else {
        return nil
    }
    var host = String(text[..<colon])
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return host.isEmpty ? nil : (host, port)
}

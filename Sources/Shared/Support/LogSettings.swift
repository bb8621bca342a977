/// The `log` section every role's configuration has.
public struct LogSettings: Codable, Sendable, Equatable {
    public var level: String?
    public var format: String?

    public init(level: String? = nil, format: String? = nil) {
        self.level = level
        self.format = format
    }

    public func problems() -> [String] {
        var problems: [String] = []
        if let level, !["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(level) {
            problems.append("log.level must be trace, debug, info, notice, warning, error or critical")
        }
        if let format, !["text", "json"].contains(format) { problems.append("log.format must be text or json") }
        return problems
    }
}

import Shared

/// A Kubernetes label selector in its string form: `app=web,tier!=cache,env in (prod,staging),
/// canary notin (true),team,!legacy`. Parsed once at startup; `matches` allocates nothing.
public struct LabelSelector: Sendable, Equatable, CustomStringConvertible {
    enum Requirement: Sendable, Equatable {
        case equals(String, String)
        case notEquals(String, String)
        case isIn(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)
    }

    let requirements: [Requirement]
    public let description: String

    /// Everything matches.
    public static let everything = LabelSelector(requirements: [], description: "")

    private init(requirements: [Requirement], description: String) {
        self.requirements = requirements
        self.description = description
    }

    /// - Throws: `ModelError.invalidField` naming the requirement it cannot read.
    public init(parsing text: String) throws(ModelError) {
        var requirements: [Requirement] = []
        for part in Self.splitTopLevel(text) {
            let item = part.trimmingSpaces()
            guard !item.isEmpty else { continue }
            requirements.append(try Self.requirement(item))
        }
        self.init(requirements: requirements, description: text)
    }

    public func matches(_ labels: [String: String]) -> Bool {
        requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): labels[key] == value
            case .notEquals(let key, let value): labels[key] != value
            case .isIn(let key, let values): labels[key].map(values.contains) ?? false
            case .notIn(let key, let values): !(labels[key].map(values.contains) ?? false)
            case .exists(let key): labels[key] != nil
            case .doesNotExist(let key): labels[key] == nil
            }
        }
    }

    private static func requirement(_ item: String) throws(ModelError) -> Requirement {
        func key(_ text: Substring) throws(ModelError) -> String {
            let key = String(text).trimmingSpaces()
            guard !key.isEmpty, key.utf8.count <= 317, key.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: ",") }) else {
                throw ModelError(.invalidField, "label selector: \(String(reflecting: item)) has an invalid key")
            }
            return key
        }
        func values(_ text: Substring) throws(ModelError) -> Set<String> {
            let inner = text.trimmingSpaces()
            guard inner.hasPrefix("("), inner.hasSuffix(")") else {
                throw ModelError(.invalidField, "label selector: \(String(reflecting: item)) needs (values)")
            }
            return Set(inner.dropFirst().dropLast().split(separator: ",").map { String($0).trimmingSpaces() })
        }
        if item.hasPrefix("!") { return .doesNotExist(try key(item.dropFirst())) }
        if let range = item.range(of: "!=") {
            return .notEquals(try key(item[..<range.lowerBound]), String(item[range.upperBound...]).trimmingSpaces())
        }
        if let range = item.range(of: "==") ?? item.range(of: "=") {
            return .equals(try key(item[..<range.lowerBound]), String(item[range.upperBound...]).trimmingSpaces())
        }
        if let range = item.range(of: " notin ") {
            return .notIn(try key(item[..<range.lowerBound]), try values(item[range.upperBound...]))
        }
        if let range = item.range(of: " in ") {
            return .isIn(try key(item[..<range.lowerBound]), try values(item[range.upperBound...]))
        }
        return .exists(try key(item[...]))
    }

    /// Splits on commas outside parentheses.
    private static func splitTopLevel(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            switch character {
            case "(":
                depth += 1
                current.append(character)
            case ")":
                depth -= 1
                current.append(character)
            case "," where depth == 0:
                parts.append(current)
                current = ""
            default: current.append(character)
            }
        }
        parts.append(current)
        return parts
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        String(drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
    }
}

import Foundation

/// The real Kubernetes API JSON of the workspace's `shared/fixtures/kube/`, copied into
/// `Tests/Fixtures/kube` by scripts/sync-kube-fixtures.sh so a clone alone runs every test
/// (`LEGATION_KUBE_FIXTURES` overrides the folder). SOURCES.md there says where each file came from.
public enum KubeFixtures {
    public static var directory: URL {
        if let override = ProcessInfo.processInfo.environment["LEGATION_KUBE_FIXTURES"] {
            return URL(fileURLWithPath: override)
        }
        return Repository.root.appendingPathComponent("Tests/Fixtures/kube")
    }

    /// The bytes of one fixture. - Throws: naming the path, if the fixtures are not beside the repository.
    public static func data(_ name: String) throws -> Data {
        let url = directory.appendingPathComponent(name)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw TestSupportError("fixture \(name) not found at \(url.path): run scripts/sync-kube-fixtures.sh")
        }
        return data
    }

    /// Decodes one fixture as `T`.
    public static func decode<T: Decodable>(_ type: T.Type, _ name: String) throws -> T {
        try JSONDecoder().decode(T.self, from: try data(name))
    }
}

/// A Kubernetes list (`…List`): its items.
public struct KubeList<Item: Decodable>: Decodable {
    public var items: [Item]
}

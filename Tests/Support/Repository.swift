import Foundation

/// Where the checkout is, for tests that read its files (deploy manifests, scripts, the Dockerfile) or
/// run what it built: found from this file's path, not from the working directory, so a test runs the
/// same from any folder and wherever its own file sits.
public enum Repository {
    /// The nearest folder above this file that holds `Package.swift`.
    public static let root: URL = {
        var directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while !FileManager.default.fileExists(atPath: directory.appendingPathComponent("Package.swift").path), directory.path != "/" {
            directory = directory.deletingLastPathComponent()
        }
        return directory
    }()

    /// A path inside the checkout.
    public static func path(_ relative: String) -> String { root.appendingPathComponent(relative).path }
}

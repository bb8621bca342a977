/// Objects that carry a resource version, so the watch can resume after them.
public protocol ResourceVersioned {
    var resourceVersion: String? { get }
}

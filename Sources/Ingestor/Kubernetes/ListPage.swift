import Foundation

/// One page of a LIST answer.
struct ListPage<Item: KubernetesReadable> {
    var resourceVersion: String?
    var `continue`: String?
    var items: [Item]
}

extension ListPage {
    private static var members: [StaticString] { ["metadata", "items"] }
    private static var metadataMembers: [StaticString] { ["resourceVersion", "continue"] }

    /// `objectEnds`: the framer's index of the page, with which each item is located in one step.
    init<Bytes: Collection>(json bytes: Bytes, objectEnds: ObjectEnds? = nil) throws(JSONReader.Failure) where Bytes.Element == UInt8 {
        self = try JSONReader.parse(bytes, objectEnds: objectEnds) { (reader: inout JSONReader) throws(JSONReader.Failure) in
            var page = ListPage(resourceVersion: nil, continue: nil, items: [])
            var sawMetadata = false
            try reader.readMembers(Self.members) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
                guard member == 0 else {
                    page.items = try reader.readItems(Item.self)
                    return
                }
                sawMetadata = true
                try reader.readMembers(Self.metadataMembers) { (reader: inout JSONReader, member: Int) throws(JSONReader.Failure) in
                    if member == 0 {
                        page.resourceVersion = try reader.readStringOrNull()
                    } else {
                        page.continue = try reader.readStringOrNull()
                    }
                }
            }
            guard sawMetadata else { throw reader.failure("list has no metadata") }
            return page
        }
    }
}

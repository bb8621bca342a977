import Foundation

/// One page of a LIST answer.
struct ListPage<Item: KubernetesReadable> {
    var resourceVersion: String?
    var `continue`: String?
    var items: [Item]
}

extension ListPage {
    /// `objectEnds`: the framer's index of the page, with which each item is located in one step.
    init<Bytes: Collection>(json bytes: Bytes, objectEnds: ObjectEnds? = nil) throws(JSONReader.Failure) where Bytes.Element == UInt8 {
        self = try JSONReader.parse(bytes, objectEnds: objectEnds) { (reader: inout JSONReader) throws(JSONReader.Failure) in
            var page = ListPage(resourceVersion: nil, continue: nil, items: [])
            var sawMetadata = false
            var seen = JSONReader.SeenKeys()
            try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
                if key == "metadata" { guard seen.first(0) else { throw reader.duplicate(key) }
                    sawMetadata = true
                    var seen = JSONReader.SeenKeys()
                    try reader.readObject { (reader: inout JSONReader, key: JSONReader.Key) throws(JSONReader.Failure) in
                        if key == "resourceVersion" { guard seen.first(0) else { throw reader.duplicate(key) }; page.resourceVersion = try reader.readStringOrNull() }
                        else if key == "continue" { guard seen.first(1) else { throw reader.duplicate(key) }; page.continue = try reader.readStringOrNull() }
                        else { try reader.skipValue() }
                    }
                } else if key == "items" { guard seen.first(1) else { throw reader.duplicate(key) }
                    page.items = try reader.readItems(Item.self)
                } else {
                    try reader.skipValue()
                }
            }
            guard sawMetadata else { throw reader.failure("list has no metadata") }
            return page
        }
    }
}

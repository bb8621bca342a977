/// A command's failure at run time, said in words (not a usage error: ArgumentParser prints no usage
/// text after it).
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
